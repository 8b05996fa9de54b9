//! The control plane as a config source: a server-sent-events stream of snapshots.
//!
//! [`run`] connects to `GET {control}/v1/gateways/stream` with the gateway token, offers every
//! `snapshot` event to [`Gateway::offer`], and posts the ACK or NACK to `/v1/gateways/ack`.
//! A second task posts [`Shared::report`](crate::live::Shared::report) to
//! `/v1/gateways/report` every second (every 250 ms while a candidate is live, and at once
//! when the snapshot changes), and the new request samples to `/v1/gateways/samples` every
//! five seconds. When the stream breaks, it reconnects with jittered
//! exponential backoff (100 ms doubling to 30 s, reset once a stream is established), sending
//! `Last-Event-ID` so an unchanged snapshot is not sent again. While disconnected the gateway
//! keeps serving what it has, and boots from its LKG on disk as with any other source.
//!
//! Plain HTTP only (hyper-util's client); put TLS in front of the control plane at the edge.

use rampart_model::EnumName;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_model::wire::ConfigAck;
use rampart_model::{ContentHash, Environment, Snapshot};
use tokio::sync::watch;

use crate::Gateway;

/// Where and how to reach the control plane.
#[derive(Debug, Clone)]
pub struct ControlSource {
    /// `http://host:port`, without a trailing slash.
    pub url: String,
    pub token: String,
    pub env: Environment,
}

/// The first reconnection delay, and the cap.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How often a gateway reports while its snapshot has a live candidate.
const FAST_REPORT: Duration = Duration::from_millis(250);

/// How often it reports otherwise.
const SLOW_REPORT: Duration = Duration::from_secs(1);

/// How often the new request samples are uploaded.
const SAMPLE_UPLOAD: Duration = Duration::from_secs(5);

/// How long an ACK or a report may take before it is dropped.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Jittered exponential backoff: each delay is uniform in [d/2, d], d doubling from
/// [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    rng: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        // Not security: jitter only, seeded by the time and the process id.
        let seed = rampart_model::clock::unix_ms()
            ^ (u64::from(std::process::id()) << 32)
            ^ 0x9e37_79b9_7f4a_7c15;
        Backoff {
            next: BACKOFF_MIN,
            rng: seed.max(1),
        }
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(BACKOFF_MAX);
        let half = d.as_millis() as u64 / 2;
        Duration::from_millis(half + self.random() % (half + 1))
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// An incremental parser of a `text/event-stream`: feed it bytes, take complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feed bytes; returns the events they completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    out.push(SseEvent {
                        id: self.id.clone(),
                        event: self.event.take(),
                        data,
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue; // A comment: keep-alive.
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            match field {
                "id" => self.id = Some(value.to_owned()),
                "event" => self.event = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        out
    }

    /// The id of the last event seen, for `Last-Event-ID`.
    pub fn last_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The client side of the control plane's distribution endpoints.
#[derive(Debug, Clone)]
pub struct Link {
    pub client: HttpClient,
    source: Arc<ControlSource>,
    query: String,
}

impl Link {
    pub fn new(source: ControlSource, identity: &rampart_model::GatewayIdentity) -> Link {
        let query = format!(
            "env={}&id={}&cell={}&version={}",
            source.env.as_str(),
            encode(&identity.id),
            encode(&identity.cell),
            encode(&identity.version.to_string()),
        );
        Link {
            client: Client::builder(TokioExecutor::new()).build_http(),
            source: Arc::new(source),
            query,
        }
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        let uri = format!(
            "{}{path}?{}",
            self.source.url.trim_end_matches('/'),
            self.query
        );
        let mut req = Request::builder().method(method).uri(uri).header(
            header::AUTHORIZATION,
            format!("Bearer {}", self.source.token),
        );
        if !body.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        req.body(Full::new(body)).map_err(|e| e.to_string())
    }

    pub async fn post_json<T: serde::Serialize>(
        &self,
        path: &str,
        value: &T,
    ) -> Result<(), String> {
        let body = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        let req = self.request(Method::POST, path, Bytes::from(body))?;
        let resp = tokio::time::timeout(POST_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        // Drain the body so the connection can be reused.
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{path} answered {status}"))
        }
    }
}

/// Follow the control plane until `stop` turns true: the stream, the ACKs and the reports.
pub async fn run(gateway: Arc<Gateway>, source: ControlSource, mut stop: watch::Receiver<bool>) {
    let link = Link::new(source, &gateway.shared.identity);
    let reporter = {
        let (link, shared, mut stop) = (link.clone(), gateway.shared.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FAST_REPORT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut uploaded_ms = 0u64;
            let mut last: Option<(tokio::time::Instant, Option<ContentHash>)> = None;
            let mut last_upload = tokio::time::Instant::now() - SAMPLE_UPLOAD;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                // Every second; every FAST_REPORT while a candidate is live (the gates judge
                // from these); at once when the snapshot changed (its first report is where a
                // stage's window starts).
                let report = shared.report();
                let now = tokio::time::Instant::now();
                let due = match &last {
                    None => true,
                    Some((at, hash)) => {
                        *hash != report.snapshot
                            || report.cohorts.len() > 1
                            || now.duration_since(*at) >= SLOW_REPORT
                    }
                };
                if due {
                    last = Some((now, report.snapshot));
                    if let Err(e) = link.post_json("/v1/gateways/report", &report).await {
                        tracing::debug!(error = %e, "cannot post the report to the control plane");
                    }
                }
                if now.duration_since(last_upload) >= SAMPLE_UPLOAD {
                    last_upload = now;
                    let samples: Vec<_> = shared
                        .samples
                        .snapshot()
                        .into_iter()
                        .filter(|s| s.at_ms > uploaded_ms)
                        .collect();
                    let Some(newest) = samples.iter().map(|s| s.at_ms).max() else {
                        continue;
                    };
                    let batch = rampart_model::wire::SampleBatch {
                        gateway: shared.identity.clone(),
                        samples,
                    };
                    match link.post_json("/v1/gateways/samples", &batch).await {
                        Ok(()) => uploaded_ms = newest,
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot post samples to the control plane")
                        }
                    }
                }
            }
        })
    };
    let mut backoff = Backoff::new();
    let mut last_id: Option<String> = None;
    loop {
        let outcome = tokio::select! {
            o = follow(&link, &mut last_id, &mut backoff, |parsed| match parsed {
                Ok(snapshot) => Some(gateway.offer(snapshot)),
                Err(e) => {
                    tracing::error!(error = %e, "the control plane sent a snapshot that does not parse; still serving the previous one");
                    gateway.shared.metrics.configs_refused.inc();
                    None
                }
            }) => o,
            _ = stop.changed() => break,
        };
        let delay = backoff.next_delay();
        match outcome {
            Ok(()) => tracing::warn!(
                retry_ms = delay.as_millis() as u64,
                "the control plane closed the stream; still serving the current snapshot"
            ),
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "cannot follow the control plane; still serving the current snapshot")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
    }
    reporter.abort();
}

/// One connection: returns when the stream ends or fails. Each `snapshot` event goes to
/// `offer` (the snapshot, or why it does not parse); the ACK or NACK it returns is posted back.
/// `None` posts nothing and does not advance `Last-Event-ID`.
pub async fn follow(
    link: &Link,
    last_id: &mut Option<String>,
    backoff: &mut Backoff,
    mut offer: impl FnMut(Result<Snapshot, String>) -> Option<ConfigAck>,
) -> Result<(), String> {
    let mut req = link.request(Method::GET, "/v1/gateways/stream", Bytes::new())?;
    req.headers_mut().insert(
        header::ACCEPT,
        http::HeaderValue::from_static("text/event-stream"),
    );
    if let Some(id) = last_id.as_deref()
        && let Ok(v) = http::HeaderValue::from_str(id)
    {
        req.headers_mut().insert("last-event-id", v);
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), link.client.request(req))
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        let text = body
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        return Err(format!("the stream answered {status}: {}", text.trim()));
    }
    tracing::info!(control = %link.source.url, "following the control plane");
    backoff.reset();
    let mut parser = SseParser::default();
    let mut body = resp.into_body();
    // Keep-alives come every 10 s; silence for much longer means a dead connection.
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(45), body.frame())
        .await
        .map_err(|_| "the stream went silent".to_owned())?
    {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for event in parser.feed(&data) {
            if event.event.as_deref() != Some("snapshot") {
                continue;
            }
            let Some(ack) = offer(Snapshot::from_json(&event.data).map_err(|e| e.to_string()))
            else {
                continue;
            };
            if let ConfigAck::Nack { hash, reason } = &ack {
                tracing::error!(hash = %hash, reason = %reason, "refused the control plane's snapshot");
            }
            *last_id = event.id.clone();
            if let Err(e) = link.post_json("/v1/gateways/ack", &ack).await {
                tracing::warn!(error = %e, "cannot post the ACK to the control plane");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.feed(b": keep-alive\n\nevent: snap").is_empty());
        let events = p.feed(b"shot\r\nid: 7\ndata: {\"a\":\ndata: 1}\n\n");
        assert_eq!(
            events,
            vec![SseEvent {
                id: Some("7".into()),
                event: Some("snapshot".into()),
                data: "{\"a\":\n1}".into(),
            }]
        );
        assert_eq!(p.last_id(), Some("7"));
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first >= BACKOFF_MIN / 2 && first <= BACKOFF_MIN);
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= BACKOFF_MAX);
        }
        assert!(b.next_delay() >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_MIN);
    }
}
