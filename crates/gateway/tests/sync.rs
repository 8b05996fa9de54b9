//! The control-plane source against a scripted control plane: the real gateway runs a good
//! snapshot, refuses a broken one with a NACK and the reason while it keeps serving, and
//! reconnects with `Last-Event-ID`.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rampart_model::wire::ConfigAck;
use rampart_model::{Config, Environment, Snapshot};

#[derive(Default)]
struct Script {
    events: String,
    connections: Vec<(Option<String>, Option<String>)>,
    acks: Vec<ConfigAck>,
    reports: usize,
}

type St = State<Arc<Mutex<Script>>>;

async fn stream(State(s): St, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    s.connections.push((h("authorization"), h("last-event-id")));
    // The first connection gets the script, then the stream ends; later ones get nothing.
    let body = std::mem::take(&mut s.events);
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

async fn ack(State(s): St, body: String) -> StatusCode {
    s.lock()
        .unwrap()
        .acks
        .push(serde_json::from_str(&body).unwrap());
    StatusCode::NO_CONTENT
}

async fn report(State(s): St, body: String) -> StatusCode {
    let _: rampart_model::wire::GatewayReport = serde_json::from_str(&body).unwrap();
    s.lock().unwrap().reports += 1;
    StatusCode::NO_CONTENT
}

fn fleet() -> Config {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet.yaml"
    ))
    .unwrap();
    rampart_model::load::from_yaml(&text).unwrap()
}

fn event(id: u64, snapshot: &Snapshot) -> String {
    format!(
        ": keep-alive\n\nid: {id}\nevent: snapshot\ndata: {}\n\n",
        serde_json::to_string(snapshot).unwrap()
    )
}

async fn readyz(admin: SocketAddr) -> Option<String> {
    let text = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.trim().strip_prefix("ready ").map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_good_snapshots_nacks_broken_ones_and_resumes() {
    let good = Snapshot::new(fleet(), Vec::new());
    let mut broken_cfg = fleet();
    broken_cfg.routes[0].upstream = "no-such-upstream".into();
    let broken = Snapshot::new(broken_cfg, Vec::new());

    let script = Arc::new(Mutex::new(Script {
        events: event(1, &good) + &event(2, &broken),
        ..Default::default()
    }));
    let app = Router::new()
        .route("/v1/gateways/stream", get(stream))
        .route("/v1/gateways/ack", post(ack))
        .route("/v1/gateways/report", post(report))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut opts = support::options(dir.path());
    opts.identity.id = "gw-1".into();
    opts.control = Some((
        format!("http://{control}"),
        "rpt_test".into(),
        Environment::Prod,
    ));
    opts.poll = Duration::from_millis(500);
    opts.stability = Duration::from_secs(60);
    opts.drain = Duration::from_secs(1);
    opts.max_inflight = 100;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let gw = tokio::spawn(rampart_gateway::run(opts, stop_rx, move |_, admin, _| {
        let _ = ready_tx.send(admin);
    }));
    let admin = ready_rx.await.unwrap();

    let start = Instant::now();
    loop {
        let done = {
            let s = script.lock().unwrap();
            s.acks.len() >= 2 && s.connections.len() >= 2 && s.reports >= 1
        };
        if done {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "acks, reconnect and a report"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still serving the good one.
    assert_eq!(readyz(admin).await, Some(good.hash().to_string()));
    {
        let s = script.lock().unwrap();
        assert_eq!(s.acks[0], ConfigAck::Ack { hash: good.hash() });
        match &s.acks[1] {
            ConfigAck::Nack { hash, reason } => {
                assert_eq!(*hash, broken.hash());
                assert!(reason.contains("no-such-upstream"), "{reason}");
            }
            other => panic!("expected a NACK, got {other:?}"),
        }
        assert_eq!(s.connections[0], (Some("Bearer rpt_test".into()), None));
        // It resumes after the last event it saw, refused or not.
        assert_eq!(s.connections[1].1.as_deref(), Some("2"));
    }
    stop_tx.send(true).unwrap();
    gw.await.unwrap().unwrap();
}
