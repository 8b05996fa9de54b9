//! The control plane's listener (`rampart control`) has the same connection hygiene as the
//! gateway's: a half-open connection is closed by the header timeout, the per-IP connection
//! limit closes the connection over it, and the API keeps answering.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Control(Child);

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether the server closes `s` within `within` (reading and discarding what it sends).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Any answer from the API (it has no health endpoint; 404 is an answer).
fn healthz(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn the_control_listener_closes_slow_and_excess_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("control")
        .arg("--db")
        .arg(format!("sqlite://{}/control.db", dir.path().display()))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--header-timeout-secs", "1", "--max-conns-per-ip", "3"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let control = Control(child);
    let mut addr = None;
    for line in BufReader::new(stdout).lines().take(10) {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("rampart control listening on http://") {
            addr = Some(a.trim().parse::<SocketAddr>().unwrap());
            break;
        }
    }
    let addr = addr.expect("rampart control printed its address");
    assert!(healthz(addr).starts_with("HTTP/1.1 "));

    // Half a request head: closed by the header timeout.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /v1/changes HTTP/1.1\r\nHost: c\r\nX-Half: ")
        .unwrap();
    assert!(closed_within(&mut half, Duration::from_secs(8)));

    // Three held connections from 127.0.0.1; a fourth is closed at once.
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(addr).unwrap();
    assert!(closed_within(&mut over, Duration::from_millis(900)));
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert!(healthz(addr).starts_with("HTTP/1.1 "));
    drop(control);
}
