//! Shared helpers for the process-level tests: real `rampart` processes and real upstream
//! servers, all on loopback with ephemeral ports.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The test upstreams and the metrics reader are the gateway's own (`testing` feature).
#[allow(unused_imports)]
pub use rampart_gateway::testing::{Upstream, metric_sum, upstream};

/// The `rampart` binary under test.
pub fn rampart_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// A running `rampart gateway` process; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub log: PathBuf,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal by name (TERM, KILL) and wait for the process to exit.
    pub fn signal(&mut self, sig: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not exit after SIG{sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the admin API reports snapshot `hash` (or any, if `None`) as active.
    pub async fn wait_for_snapshot(&self, hash: Option<&str>) {
        let client = reqwest::Client::new();
        let ready = async || {
            let r = client.get(self.admin_url("/readyz")).send().await;
            let text = match r {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            (text.starts_with("ready") && hash.is_none_or(|h| text.contains(h)))
                .then_some(())
                .ok_or(())
        };
        let fail = |()| {
            format!(
                "snapshot {hash:?} never became active; log:\n{}",
                self.log()
            )
        };
        poll_until(Duration::from_secs(20), 25, ready, fail).await;
    }
}

/// Call `probe` every `every_ms` milliseconds until it answers `Ok`, and return that; after
/// `within`, panic with the message `fail` makes of its last `Err` (what it saw instead).
pub async fn poll_until<T, L>(
    within: Duration,
    every_ms: u64,
    mut probe: impl AsyncFnMut() -> Result<T, L>,
    fail: impl FnOnce(L) -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("{}", fail(last)),
            Err(_) => tokio::time::sleep(Duration::from_millis(every_ms)).await,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example fleet with its demo endpoints replaced: `ports` maps each example endpoint
/// (such as `127.0.0.1:18081`) to a test upstream.
pub fn example_fleet(ports: &[(&str, SocketAddr)]) -> String {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet.yaml"
    ))
    .unwrap();
    for (from, to) in ports {
        text = text.replace(from, &to.to_string());
    }
    text
}

/// Write `text` to `path` atomically (so a watching gateway never sees half a file).
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Start a gateway. `config` is the watched file (or none, to boot from the LKG); `args` are
/// extra flags, and may set `--cell`, `--id`, `--poll-ms`, `--stability-secs` and
/// `--drain-secs` (defaults: eu-1, gw-test, 50 ms, 1 s, 5 s); `env` is added to the process
/// environment. Panics, with the gateway's log, if it is not ready in 30 s.
pub fn start_gateway_with_args(
    config: Option<&Path>,
    data_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Gateway {
    std::fs::create_dir_all(data_dir).unwrap();
    let log = data_dir.with_extension(format!("log-{}", std::process::id()));
    let mut cmd = Command::new(rampart_bin());
    cmd.args([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    for (flag, default) in [
        ("--cell", "eu-1"),
        ("--id", "gw-test"),
        ("--poll-ms", "50"),
        ("--stability-secs", "1"),
        ("--drain-secs", "5"),
    ] {
        if !args.contains(&flag) {
            cmd.args([flag, default]);
        }
    }
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("FAILPOINTS")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("rampart starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("rampart gateway ready") {
                let _ = tx.send(line);
            }
        }
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!(
            "gateway not ready; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    let field = |name: &str| -> Option<SocketAddr> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(|a| a.parse().unwrap())
    };
    Gateway {
        proxy: field("proxy").unwrap(),
        admin: field("admin").unwrap(),
        tls: field("tls"),
        child,
        log,
    }
}
