//! The connections of a run: the workers that send the scheduled requests, and the pacer
//! that hands them out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, mpsc};

use super::schedule::Schedule;
use super::{LoadArgs, Outcome, Percentiles, Report, Stats, Target};

/// Open one connection.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Send one request on `conn` (opening it if needed) and read the whole answer.
async fn attempt(
    conn: &mut Option<SendRequest<Empty<Bytes>>>,
    target: &Target,
    scheduled: Instant,
    stats: &mut Stats,
) -> Outcome {
    if let Some(sender) = conn.as_mut()
        && sender.ready().await.is_err()
    {
        // Closed while idle (by the server, or after a `connection: close`): not a failure
        // of this request, which has not been sent yet.
        *conn = None;
    }
    let sender = match conn {
        Some(sender) => sender,
        None => match connect(target.addr).await {
            Ok(sender) => conn.insert(sender),
            Err(_) => return Outcome::Connect,
        },
    };
    let Ok(req) = target.request() else {
        return Outcome::Io;
    };
    stats.sent += 1;
    stats
        .send_lags
        .push(micros(Instant::now().saturating_duration_since(scheduled)));
    let answer = match sender.send_request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            resp.into_body().collect().await.map(|_| status)
        }
        Err(e) => Err(e),
    };
    match answer {
        Ok(status) => Outcome::Answered {
            status,
            micros: micros(Instant::now().saturating_duration_since(scheduled)),
        },
        Err(_) => {
            *conn = None;
            Outcome::Io
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One connection's worth of work: take due requests from the queue until it closes.
async fn worker(
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    target: Arc<Target>,
    timeout: Duration,
) -> Stats {
    let mut stats = Stats::default();
    let mut conn = None;
    loop {
        let Some(scheduled) = queue.lock().await.recv().await else {
            break;
        };
        let deadline = scheduled + timeout;
        let outcome = if Instant::now() >= deadline {
            Outcome::Timeout
        } else {
            let run = attempt(&mut conn, &target, scheduled, &mut stats);
            match tokio::time::timeout_at(deadline.into(), run).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // Mid-request: an HTTP/1.1 connection cannot be reused.
                    conn = None;
                    Outcome::Timeout
                }
            }
        };
        stats.record(outcome);
    }
    stats
}

pub(super) async fn drive(target: Target, total: u64, args: &LoadArgs) -> Report {
    let timeout = Duration::from_millis(args.timeout_ms);
    let target = Arc::new(target);
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(worker(rx.clone(), target.clone(), timeout)))
        .collect();
    let start = Instant::now();
    let mut schedule = Schedule::new(start, args.rate, total);
    // The schedule runs on its own thread: Tokio's timers tick in whole milliseconds, which
    // would send requests in bursts and add up to a millisecond to each latency. The workers
    // stop once this thread ends and drops the sender.
    let pacer = std::thread::spawn(move || {
        while let Some(next) = schedule.next_at() {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            for at in schedule.due(Instant::now()) {
                let _ = tx.send(at);
            }
        }
    });
    let mut stats = Stats::default();
    for w in workers {
        if let Ok(s) = w.await {
            stats.merge(s);
        }
    }
    let _ = pacer.join();
    let elapsed = start.elapsed();
    let latency = Percentiles::of(&mut stats.latencies);
    let send_lag = Percentiles::of(&mut stats.send_lags);
    Report {
        url: args.url.clone(),
        rate: args.rate,
        connections: args.connections,
        scheduled: total,
        elapsed,
        stats,
        latency,
        send_lag,
    }
}
