//! Unit tests of `rampart load`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::schedule::Schedule;
use super::stats::percentile;
use super::*;

#[test]
fn percentile_by_nearest_rank() {
    let v: Vec<u64> = (1..=1000).collect();
    assert_eq!(percentile(&v, 50.0), 500);
    assert_eq!(percentile(&v, 99.0), 990);
    assert_eq!(percentile(&v, 99.9), 999);
    assert_eq!(percentile(&v, 100.0), 1000);
    assert_eq!(percentile(&v, 0.0), 1);
    assert_eq!(percentile(&[7], 99.9), 7);
    assert_eq!(percentile(&[], 50.0), 0);
    // Ten values: p99 and p99.9 are the largest.
    let v: Vec<u64> = (1..=10).collect();
    assert_eq!(percentile(&v, 99.0), 10);
    assert_eq!(percentile(&v, 50.0), 5);
}

#[test]
fn percentiles_sort_and_convert_to_ms() {
    let mut v = vec![3_000, 1_000, 2_000, 10_000];
    let p = Percentiles::of(&mut v);
    assert_eq!(p.p50, 2.0);
    assert_eq!(p.p99, 10.0);
    assert_eq!(p.max, 10.0);
    assert_eq!(Percentiles::of(&mut []).max, 0.0);
}

#[test]
fn schedule_is_fixed_interval_and_catches_up() {
    let start = Instant::now();
    let mut s = Schedule::new(start, 1000.0, 10);
    assert_eq!(s.next_at(), Some(start));
    // Nothing answered for 4.5 ms: the five requests due by then all come out at once,
    // each with its own scheduled time (open loop: the rate does not slow down).
    let due = s.due(start + Duration::from_micros(4_500));
    assert_eq!(due.len(), 5);
    for (i, at) in due.iter().enumerate() {
        assert_eq!(*at - start, Duration::from_millis(i as u64));
    }
    assert_eq!(s.next_at(), Some(start + Duration::from_millis(5)));
    assert!(s.due(start + Duration::from_micros(4_900)).is_empty());
    // Long after the end: only the remaining five, then nothing.
    assert_eq!(s.due(start + Duration::from_secs(60)).len(), 5);
    assert_eq!(s.next_at(), None);
    assert!(s.due(start + Duration::from_secs(120)).is_empty());
}

#[test]
fn schedule_handles_fractional_rates() {
    let start = Instant::now();
    let s = Schedule::new(start, 3.0, 4);
    assert_eq!(s.at(3) - start, Duration::from_secs(1));
    let s = Schedule::new(start, 5000.0, 50_000);
    assert_eq!(s.at(49_999) - start, Duration::from_micros(9_999_800));
}

#[test]
fn every_outcome_is_counted_once() {
    let mut s = Stats::default();
    for outcome in [
        Outcome::Answered {
            status: 200,
            micros: 5,
        },
        Outcome::Answered {
            status: 304,
            micros: 6,
        },
        Outcome::Answered {
            status: 429,
            micros: 7,
        },
        Outcome::Answered {
            status: 503,
            micros: 8,
        },
        Outcome::Answered {
            status: 101,
            micros: 9,
        },
        Outcome::Connect,
        Outcome::Io,
        Outcome::Timeout,
    ] {
        s.record(outcome);
    }
    let mut t = Stats::default();
    t.record(Outcome::Timeout);
    s.merge(t);
    assert_eq!((s.ok, s.http_4xx, s.http_5xx, s.http_other), (2, 1, 1, 1));
    assert_eq!((s.connect_errors, s.io_errors, s.timeouts), (1, 1, 2));
    assert_eq!(s.failed(), 4);
    assert_eq!(s.ended(), 9);
    assert_eq!(s.latencies.len(), 5);
}

#[test]
fn headers_parse() {
    let (n, v) = parse_header("X-Tenant-Id: acme").unwrap();
    assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-tenant-id", "acme"));
    let (n, v) = parse_header("host:jira.example.com:8080").unwrap();
    assert_eq!(
        (n.as_str(), v.to_str().unwrap()),
        ("host", "jira.example.com:8080")
    );
    assert!(parse_header("no-colon").is_err());
    assert!(parse_header("bad name: x").is_err());
}

fn args(url: &str, rate: f64, requests: u64) -> LoadArgs {
    LoadArgs {
        url: url.into(),
        rate,
        duration: None,
        requests: Some(requests),
        connections: 4,
        headers: vec!["x-tenant-id: acme".into()],
        vary: None,
        method: "GET".into(),
        timeout_ms: 500,
        json: false,
    }
}

#[test]
fn plan_checks_arguments() {
    let (t, n) = plan(&args("http://127.0.0.1:9/a?b=1", 100.0, 7)).unwrap();
    assert_eq!(n, 7);
    assert_eq!(t.path, "/a?b=1");
    assert_eq!(t.headers[0].1, "127.0.0.1:9");
    let mut a = args("http://127.0.0.1:9/", 100.0, 1);
    a.requests = None;
    a.duration = Some(2.5);
    assert_eq!(plan(&a).unwrap().1, 250);
    assert!(plan(&args("http://127.0.0.1:9/", 0.0, 1)).is_err());
    assert!(plan(&args("http://127.0.0.1:9/", 10.0, 0)).is_err());
    assert!(plan(&args("https://127.0.0.1:9/", 10.0, 1)).is_err());
    assert!(plan(&args("http://192.0.2.1:80/", 10.0, 1)).is_err());
}

/// A keep-alive server on loopback that answers every request with `status`.
async fn tiny_server(status: u16) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn counts_answers_by_class() {
    let addr = tiny_server(200).await;
    let a = args(&format!("http://{addr}/"), 2_000.0, 200);
    let (t, n) = plan(&a).unwrap();
    let r = drive(t, n, &a).await;
    assert_eq!((r.scheduled, r.stats.sent, r.stats.ok), (200, 200, 200));
    assert_eq!(r.stats.failed(), 0);
    assert_eq!(r.stats.latencies.len(), 200);
    assert!(r.latency.max >= r.latency.p50);

    let addr = tiny_server(503).await;
    let a = args(&format!("http://{addr}/"), 2_000.0, 50);
    let (t, n) = plan(&a).unwrap();
    let r = drive(t, n, &a).await;
    assert_eq!((r.stats.http_5xx, r.stats.ok), (50, 0));
}

#[tokio::test]
async fn counts_connect_io_and_timeout_failures() {
    // Nobody listens: every request fails to connect.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let a = args(&format!("http://{closed}/"), 1_000.0, 20);
    let (t, n) = plan(&a).unwrap();
    let r = drive(t, n, &a).await;
    assert_eq!((r.stats.connect_errors, r.stats.sent), (20, 0));
    assert_eq!(r.stats.ended(), 20);

    // A server that accepts and closes: every sent request is an I/O error.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let a = args(&format!("http://{rude}/"), 1_000.0, 20);
    let (t, n) = plan(&a).unwrap();
    let r = drive(t, n, &a).await;
    assert_eq!(r.stats.io_errors + r.stats.connect_errors, 20);
    assert_eq!(r.stats.ok, 0);

    // A server that never answers: timeouts, and the run still ends by itself.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let mut a = args(&format!("http://{mute}/"), 1_000.0, 20);
    a.timeout_ms = 100;
    let (t, n) = plan(&a).unwrap();
    let started = Instant::now();
    let r = drive(t, n, &a).await;
    assert_eq!(r.stats.timeouts, 20);
    assert!(started.elapsed() < Duration::from_secs(5));
}
