//! Safety inside the data plane, process by process: refused configs keep the old one serving,
//! hot swaps under load drop nothing, the LKG on disk boots a gateway with no source and is
//! refused when corrupt, the crash-loop guard quarantines a snapshot that keeps killing the
//! process, a panicking candidate falls back to the baseline per request, and the local guard
//! drops a failing candidate by itself.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rampart_model::{Attribute, Config, Rollout, Snapshot, StageScope};
use serde_json::Value;
use support::*;

/// A small fleet: one route for every path to one upstream, with a headers policy that tags
/// each response with `x-config: <tag>`. `request_header` is set on forwarded requests (the
/// test upstream answers `x-test-status: N` with status N).
fn fleet(upstream: SocketAddr, tag: &str, request_header: Option<(&str, &str)>) -> String {
    let request = request_header.map_or_else(String::new, |(n, v)| {
        format!("      request:\n        set:\n          - {{ name: {n}, value: \"{v}\" }}\n")
    });
    format!(
        "environment: prod
products:
  - name: app
upstreams:
  - name: app-pool
    endpoints: [\"{upstream}\"]
policies:
  - id: tag
    headers:
{request}      response:
        set:
          - {{ name: x-config, value: \"{tag}\" }}
routes:
  - id: app-all
    product: app
    match:
      path: {{ prefix: / }}
    upstream: app-pool
    policies: [tag]
"
    )
}

fn config(yaml: &str) -> Config {
    rampart_model::load::from_yaml::<Config>(yaml).expect("the test fleet loads")
}

/// The hash a gateway gives a fleet file (a snapshot without rollouts).
fn hash_of(yaml: &str) -> String {
    Snapshot::new(config(yaml), vec![]).hash().to_string()
}

/// A snapshot whose rollout sends 100% of requests, in every cell, to `candidate`.
fn with_rollout(baseline: &str, id: &str, candidate: &str) -> Snapshot {
    Snapshot::new(
        config(baseline),
        vec![Rollout {
            id: id.to_owned(),
            salt: format!("{id}-salt"),
            sticky_key: Attribute::Tenant,
            scope: StageScope {
                cells: vec![],
                gateways: vec![],
                percent: 100.0,
            },
            shadow: false,
            candidate: config(candidate),
        }],
    )
}

/// A snapshot whose baseline serves from `baseline` tagged `baseline`, and whose rollout `id`
/// sends every request to `candidate`, tagged `candidate` and with `request_header` set.
fn baseline_and_candidate(
    id: &str,
    baseline: SocketAddr,
    candidate: SocketAddr,
    request_header: Option<(&str, &str)>,
) -> Snapshot {
    with_rollout(
        &fleet(baseline, "baseline", None),
        id,
        &fleet(candidate, "candidate", request_header),
    )
}

/// The gateway's log without ANSI colour codes.
fn plain_log(gw: &Gateway) -> String {
    let raw = gw.log();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences: ESC [ params final-byte.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of the log that contain `needle`.
fn log_lines(gw: &Gateway, needle: &str) -> Vec<String> {
    plain_log(gw)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Wait until at least `count` log lines contain `needle`; returns them.
async fn wait_for_log(gw: &Gateway, needle: &str, count: usize) -> Vec<String> {
    let lines = async || {
        Some(log_lines(gw, needle))
            .filter(|l| l.len() >= count)
            .ok_or(())
    };
    let fail = |()| {
        format!(
            "the log never had {count} line(s) with {needle:?}:\n{}",
            plain_log(gw)
        )
    };
    poll_until(Duration::from_secs(15), 25, lines, fail).await
}

/// The one log line that contains `needle`; it must contain every one of `fragments`. Panics
/// with the log if there is not exactly one such line or it lacks a fragment.
fn one_log_line(gw: &Gateway, needle: &str, fragments: &[&str]) -> String {
    let lines = log_lines(gw, needle);
    assert!(
        lines.len() == 1 && fragments.iter().all(|f| lines[0].contains(f)),
        "{lines:?} (one line with {needle:?} and {fragments:?}); log:\n{}",
        plain_log(gw)
    );
    lines.into_iter().next().unwrap()
}

/// The sum of every sample of a metric family (all label sets), 0 if absent.
async fn metric(client: &reqwest::Client, gw: &Gateway, name: &str) -> f64 {
    let r = client.get(gw.admin_url("/metrics")).send().await.unwrap();
    metric_sum(&r.text().await.unwrap(), name, &[]).unwrap_or(0.0)
}

/// Wait until a metric reaches `at_least`; returns its value.
async fn wait_for_metric(client: &reqwest::Client, gw: &Gateway, name: &str, at_least: f64) -> f64 {
    let value = async || {
        let v = metric(client, gw, name).await;
        if v >= at_least { Ok(v) } else { Err(v) }
    };
    let fail = |v| {
        format!(
            "{name} stayed at {v}, below {at_least}; log:\n{}",
            plain_log(gw)
        )
    };
    poll_until(Duration::from_secs(15), 25, value, fail).await
}

async fn cohorts(client: &reqwest::Client, gw: &Gateway) -> Value {
    client
        .get(gw.admin_url("/cohorts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The counters of the cohort of `rollout` (`None`: the baseline).
fn cohort<'a>(report: &'a Value, rollout: Option<&str>) -> &'a Value {
    report["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rollout"].as_str() == rollout)
        .unwrap_or_else(|| panic!("no cohort {rollout:?} in {report}"))
}

/// GET / through the gateway: the status and the `x-config` tag.
async fn get(client: &reqwest::Client, gw: &Gateway) -> (u16, String) {
    let r = client.get(gw.url("/")).send().await.unwrap();
    let tag = r
        .headers()
        .get("x-config")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status().as_u16(), tag)
}

/// `n` requests, each of which must be a 200 tagged `tag`.
async fn assert_served(client: &reqwest::Client, gw: &Gateway, tag: &str, n: usize) {
    for i in 0..n {
        let got = get(client, gw).await;
        assert_eq!(got, (200, tag.to_owned()), "request {i}");
    }
}

async fn readyz(client: &reqwest::Client, gw: &Gateway) -> (u16, String) {
    let r = client.get(gw.admin_url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Wait until `path` exists and contains `needle` (a snapshot hash).
async fn wait_for_file_with(path: &Path, needle: &str, within: Duration) {
    let file = async || {
        let text = std::fs::read_to_string(path);
        text.is_ok_and(|t| t.contains(needle))
            .then_some(())
            .ok_or(())
    };
    poll_until(within, 25, file, |()| {
        format!("{} never contained {needle}", path.display())
    })
    .await;
}

/// Wait until the crash-loop guard's activation marker names `hash`.
async fn wait_for_marker(guard: &Path, hash: &str) {
    let marker = async || {
        let marker = std::fs::read_to_string(guard)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["activating"]["hash"].as_str().map(str::to_owned));
        if marker.as_deref() == Some(hash) {
            Ok(())
        } else {
            Err(marker)
        }
    };
    let fail = |marker| {
        format!(
            "no activation marker for {hash} in {}: {marker:?}",
            guard.display()
        )
    };
    poll_until(Duration::from_secs(5), 10, marker, fail).await;
}

/// Write `snapshot` to `dir/snapshot.json` and start a gateway on it with its data in
/// `dir/<data>`; returns it once the snapshot is active, and the snapshot's hash.
async fn serve_snapshot(
    dir: &Path,
    data: &str,
    snapshot: &Snapshot,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Gateway, String) {
    let (file, hash) = (dir.join("snapshot.json"), snapshot.hash().to_string());
    write_atomic(&file, &snapshot.to_json_pretty());
    let gw = start_gateway_with_args(Some(&file), &dir.join(data), args, env);
    gw.wait_for_snapshot(Some(&hash)).await;
    (gw, hash)
}

/// Change one character of a snapshot's content (not its hash) so the hash no longer verifies.
fn corrupt(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} in {text}");
    assert_eq!(from.len(), to.len());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// 1. Files that do not parse, and a config that parses but does not validate, are refused;
/// the old config keeps serving all along, and a good edit is applied afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_config_keeps_the_old_one_serving() {
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    let good = fleet(up.addr, "old", None);
    write_atomic(&file, &good);
    let gw = start_gateway_with_args(Some(&file), &dir.path().join("gw"), &[], &[]);
    gw.wait_for_snapshot(Some(&hash_of(&good))).await;
    let client = reqwest::Client::new();
    assert_served(&client, &gw, "old", 3).await;
    let file_name = file.display().to_string();

    // (a1) Not YAML at all: the file source logs the file and where the syntax broke.
    write_atomic(&file, "environment: prod\nroutes: [\n  - id: x\n");
    let lines = wait_for_log(&gw, "config file refused", 1).await;
    assert!(
        lines[0].contains(&file_name) && lines[0].contains("line"),
        "{lines:?}"
    );
    assert_served(&client, &gw, "old", 3).await;

    // (a2) YAML, but not a config: the log names the file and the field at fault.
    let unknown_field = good.replace(
        "      path: { prefix: / }",
        "      path: { prefix: / }\n      hots: x",
    );
    assert_ne!(unknown_field, good);
    write_atomic(&file, &unknown_field);
    let lines = wait_for_log(&gw, "config file refused", 2).await;
    assert!(
        lines[1].contains(&file_name) && lines[1].contains("routes[0].match.hots"),
        "{lines:?}"
    );
    assert_served(&client, &gw, "old", 3).await;
    // A file that does not parse never becomes a snapshot, so there is no hash to NACK, but
    // it counts as refused.
    assert_eq!(
        metric(&client, &gw, "rampart_gateway_configs_refused_total").await,
        2.0
    );
    assert!(cohorts(&client, &gw).await.get("last_nack").is_none());

    // (b) A config that parses but does not validate: a route to a missing upstream.
    let invalid = good.replace("    upstream: app-pool", "    upstream: missing-pool");
    assert_ne!(invalid, good);
    write_atomic(&file, &invalid);
    let refused = wait_for_metric(&client, &gw, "rampart_gateway_configs_refused_total", 3.0).await;
    assert_eq!(refused, 3.0);
    let report = cohorts(&client, &gw).await;
    let nack = &report["last_nack"];
    assert_eq!(nack["kind"], "nack", "{report}");
    assert_eq!(nack["hash"], hash_of(&invalid).as_str(), "{report}");
    let reason = nack["reason"].as_str().unwrap();
    assert!(
        reason.contains("routes[0].upstream") && reason.contains("missing-pool"),
        "{reason}"
    );
    assert_eq!(report["snapshot"], hash_of(&good).as_str());
    let (status, ready) = readyz(&client, &gw).await;
    assert_eq!(status, 200);
    assert!(ready.contains(&hash_of(&good)), "{ready}");
    assert_served(&client, &gw, "old", 5).await;
    one_log_line(&gw, "snapshot refused; still serving the previous one", &[]);

    // A good edit still goes through.
    let edited = fleet(up.addr, "new", None);
    write_atomic(&file, &edited);
    gw.wait_for_snapshot(Some(&hash_of(&edited))).await;
    assert_served(&client, &gw, "new", 3).await;
    assert_eq!(
        metric(&client, &gw, "rampart_gateway_configs_applied_total").await,
        2.0
    );
    assert_eq!(
        metric(&client, &gw, "rampart_gateway_configs_refused_total").await,
        3.0
    );
}

/// 2. Swapping the config about 10 times a second under concurrent load fails no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swaps_under_load_fail_no_request() {
    const TASKS: usize = 16;
    const PER_TASK: usize = 250;
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    let (a, b) = (fleet(up.addr, "a", None), fleet(up.addr, "b", None));
    write_atomic(&file, &a);
    let gw = start_gateway_with_args(
        Some(&file),
        &dir.path().join("gw"),
        &["--poll-ms", "20"],
        &[],
    );
    gw.wait_for_snapshot(Some(&hash_of(&a))).await;
    let client = reqwest::Client::new();
    let applied_before = metric(&client, &gw, "rampart_gateway_configs_applied_total").await;

    // The writer: a plain thread, so the load cannot starve it.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, file, a, b) = (stop.clone(), file.clone(), a.clone(), b.clone());
        std::thread::spawn(move || {
            let mut writes = 0u64;
            while !stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                writes += 1;
                write_atomic(&file, if writes % 2 == 1 { &b } else { &a });
            }
            writes
        })
    };

    let (ok, seen_a, seen_b) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (client, url) = (client.clone(), gw.url("/"));
        let (ok, seen_a, seen_b, failures) =
            (ok.clone(), seen_a.clone(), seen_b.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_TASK {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        match r.headers().get("x-config").and_then(|v| v.to_str().ok()) {
                            Some("a") => seen_a.fetch_add(1, Relaxed),
                            Some("b") => seen_b.fetch_add(1, Relaxed),
                            other => {
                                failures.lock().unwrap().push(format!("tag {other:?}"));
                                0
                            }
                        };
                        // Drain the body: a request counts only once it is complete.
                        match r.bytes().await {
                            Ok(_) => ok.fetch_add(1, Relaxed),
                            Err(e) => {
                                failures.lock().unwrap().push(format!("body: {e}"));
                                0
                            }
                        };
                    }
                    Ok(r) => failures.lock().unwrap().push(format!(
                        "status {} {:?}",
                        r.status(),
                        r.headers()
                    )),
                    Err(e) => failures.lock().unwrap().push(format!("error: {e}")),
                }
                // Spread the fixed total over about two seconds, so ~20 swaps land during it.
                tokio::time::sleep(Duration::from_millis(8)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    stop.store(true, Relaxed);
    let writes = writer.join().unwrap();

    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(ok.load(Relaxed), (TASKS * PER_TASK) as u64);
    let (sa, sb) = (seen_a.load(Relaxed), seen_b.load(Relaxed));
    assert!(sa > 0 && sb > 0, "a served {sa}, b served {sb}");
    let applied =
        metric(&client, &gw, "rampart_gateway_configs_applied_total").await - applied_before;
    assert!(
        applied >= 10.0,
        "only {applied} swaps in {elapsed:?} ({writes} writes)"
    );
    assert_eq!(
        metric(&client, &gw, "rampart_gateway_configs_refused_total").await,
        0.0
    );
    eprintln!(
        "{} requests in {elapsed:?}: a {sa}, b {sb}; {applied} swaps from {writes} writes",
        TASKS * PER_TASK
    );
}

/// 3. A gateway with no config source boots from the LKG the previous process left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_from_the_lkg_without_a_source() {
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = (dir.path().join("fleet.yaml"), dir.path().join("gw"));
    let yaml = fleet(up.addr, "lkg", None);
    let hash = hash_of(&yaml);
    write_atomic(&file, &yaml);
    let client = reqwest::Client::new();

    let mut first = start_gateway_with_args(Some(&file), &data, &[], &[]);
    first.wait_for_snapshot(Some(&hash)).await;
    assert_served(&client, &first, "lkg", 2).await;
    wait_for_file_with(&data.join("current.json"), &hash, Duration::from_secs(10)).await;
    assert!(first.signal("TERM").success(), "{}", plain_log(&first));

    // The source is gone: no --config at all.
    std::fs::remove_file(&file).unwrap();
    let second = start_gateway_with_args(None, &data, &[], &[]);
    second.wait_for_snapshot(Some(&hash)).await;
    let (status, ready) = readyz(&client, &second).await;
    assert_eq!(
        (status, ready.trim()),
        (200, format!("ready {hash}").as_str())
    );
    assert_served(&client, &second, "lkg", 3).await;
    one_log_line(
        &second,
        "booted from the last known good on disk",
        &["file=\"current\"", &hash],
    );
}

/// 4. A corrupted LKG is refused with an error naming the file. With nothing else on disk the
/// gateway serves 503 `no_config` (and stays up); with a good `previous.json` it serves that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_lkg_is_refused() {
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let (alpha, beta) = (fleet(up.addr, "alpha", None), fleet(up.addr, "beta", None));
    let (hash_alpha, hash_beta) = (hash_of(&alpha), hash_of(&beta));

    // Only current.json, corrupted: no snapshot to serve.
    let data = dir.path().join("only-current");
    std::fs::create_dir_all(&data).unwrap();
    let current = data.join("current.json");
    std::fs::write(
        &current,
        format!(
            "{}\n",
            Snapshot::new(config(&alpha), vec![]).to_json_pretty()
        ),
    )
    .unwrap();
    corrupt(&current, "\"alpha\"", "\"alphb\"");
    let gw = start_gateway_with_args(None, &data, &[], &[]);
    let refused = wait_for_log(&gw, "refusing the last known good file", 1).await;
    assert!(
        refused[0].contains("corrupt")
            && refused[0].contains(&current.display().to_string())
            && refused[0].contains("hash mismatch"),
        "{refused:?}"
    );
    wait_for_log(&gw, "no usable snapshot", 1).await;
    let (status, _) = readyz(&client, &gw).await;
    assert_eq!(status, 503);
    let r = client.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-rampart-error"], "no_config");
    assert_eq!(
        client
            .get(gw.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(gw);

    // current.json (beta) corrupted, previous.json (alpha) good: the gateway serves alpha.
    // Both files are written by a gateway: alpha runs until stable, then beta does.
    let (file, data) = (dir.path().join("fleet.yaml"), dir.path().join("rotated"));
    let (current, previous) = (data.join("current.json"), data.join("previous.json"));
    write_atomic(&file, &alpha);
    let mut writer = start_gateway_with_args(Some(&file), &data, &[], &[]);
    writer.wait_for_snapshot(Some(&hash_alpha)).await;
    wait_for_file_with(&current, &hash_alpha, Duration::from_secs(10)).await;
    write_atomic(&file, &beta);
    writer.wait_for_snapshot(Some(&hash_beta)).await;
    wait_for_file_with(&current, &hash_beta, Duration::from_secs(10)).await;
    wait_for_file_with(&previous, &hash_alpha, Duration::from_secs(1)).await;
    assert!(writer.signal("TERM").success());
    corrupt(&current, "\"beta\"", "\"betb\"");

    let gw = start_gateway_with_args(None, &data, &[], &[]);
    gw.wait_for_snapshot(Some(&hash_alpha)).await;
    assert_served(&client, &gw, "alpha", 3).await;
    let path = current.display().to_string();
    one_log_line(
        &gw,
        "refusing the last known good file",
        &["corrupt", &path],
    );
    one_log_line(
        &gw,
        "booted from the last known good on disk",
        &["file=\"previous\""],
    );
}

/// 5. A snapshot that killed the process twice before it was stable is quarantined: the third
/// process refuses it and boots on the LKG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crash_loop_guard_quarantines_a_crashing_snapshot() {
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = (dir.path().join("fleet.yaml"), dir.path().join("gw"));
    let (a, b) = (fleet(up.addr, "a", None), fleet(up.addr, "b", None));
    let (hash_a, hash_b) = (hash_of(&a), hash_of(&b));
    let args = ["--stability-secs", "5"];
    let client = reqwest::Client::new();

    // A runs for the stability period and becomes the LKG.
    write_atomic(&file, &a);
    let mut gw = start_gateway_with_args(Some(&file), &data, &args, &[]);
    gw.wait_for_snapshot(Some(&hash_a)).await;
    wait_for_file_with(&data.join("current.json"), &hash_a, Duration::from_secs(15)).await;

    // B is activated, and the process dies before B is stable; twice.
    for round in 1..=2 {
        let t0 = Instant::now();
        if round == 1 {
            write_atomic(&file, &b);
        } else {
            gw = start_gateway_with_args(Some(&file), &data, &args, &[]);
        }
        gw.wait_for_snapshot(Some(&hash_b)).await;
        // The activation marker is on disk before the crash.
        wait_for_marker(&data.join("guard.json"), &hash_b).await;
        assert_served(&client, &gw, "b", 1).await;
        gw.signal("KILL");
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "B may have become stable"
        );
        if round == 2 {
            let died = "previous process died before confirming this snapshot";
            one_log_line(&gw, died, &[]);
        }
    }

    // Third start on the same file: B is refused, A serves.
    let gw = start_gateway_with_args(Some(&file), &data, &args, &[]);
    gw.wait_for_snapshot(Some(&hash_a)).await;
    assert_served(&client, &gw, "a", 3).await;
    let (_, ready) = readyz(&client, &gw).await;
    assert!(ready.contains(&hash_a), "{ready}");
    let guard = log_lines(&gw, "crash-loop guard");
    assert!(
        guard.iter().any(|l| l.contains(&hash_b)),
        "{}",
        plain_log(&gw)
    );
    let report = cohorts(&client, &gw).await;
    let nack = &report["last_nack"];
    assert_eq!(nack["kind"], "nack", "{report}");
    assert_eq!(nack["hash"], hash_b.as_str(), "{report}");
    assert!(
        nack["reason"]
            .as_str()
            .unwrap()
            .contains("crash-loop guard"),
        "{report}"
    );
    assert_eq!(
        metric(&client, &gw, "rampart_gateway_configs_refused_total").await,
        1.0
    );
    one_log_line(&gw, "booted from the last known good on disk", &[&hash_a]);
}

/// 6. A candidate whose evaluation panics serves each request with the baseline, counts the
/// fallback, and never takes the process down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_candidate_falls_back_to_the_baseline() {
    const REQUESTS: u64 = 40;
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = baseline_and_candidate("r-panic", up.addr, up.addr, None);
    let args = ["--guard-min-requests", "100000"];
    let client = reqwest::Client::new();

    // Control: without the failpoint the rollout serves the candidate.
    let (control, _) = serve_snapshot(dir.path(), "control", &snapshot, &args, &[]).await;
    assert_served(&client, &control, "candidate", 3).await;
    drop(control);

    let panic = [("FAILPOINTS", "gateway::candidate=panic")];
    let (mut gw, _) = serve_snapshot(dir.path(), "gw", &snapshot, &args, &panic).await;
    assert_served(&client, &gw, "baseline", REQUESTS as usize).await;

    assert!(gw.child.try_wait().unwrap().is_none(), "the gateway died");
    let report = cohorts(&client, &gw).await;
    let candidate = cohort(&report, Some("r-panic"));
    assert_eq!(candidate["requests"], REQUESTS, "{report}");
    assert_eq!(candidate["fallbacks"], REQUESTS, "{report}");
    assert_eq!(candidate["guard_tripped"], false, "{report}");
    assert_eq!(cohort(&report, None)["requests"], 0, "{report}");
    assert_eq!(
        metric(&client, &gw, "rampart_gateway_candidate_fallbacks_total").await,
        REQUESTS as f64
    );
    // Logged once, not once per request: a failing candidate must not flood the log.
    one_log_line(
        &gw,
        "candidate evaluation failed; served by the baseline",
        &[],
    );
    let (status, _) = readyz(&client, &gw).await;
    assert_eq!(status, 200);
    assert!(gw.child.try_wait().unwrap().is_none(), "the gateway died");
}

/// 7. A candidate that fails on this gateway trips the local guard after `min_requests`: the
/// baseline serves from then on, without any control plane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_guard_drops_a_failing_candidate() {
    const MIN_REQUESTS: usize = 20;
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    // The candidate makes the upstream answer 500 to everything.
    let fail = Some(("x-test-status", "500"));
    let snapshot = baseline_and_candidate("r-bad", up.addr, up.addr, fail);
    let min = MIN_REQUESTS.to_string();
    let args = ["--guard-min-requests", &min, "--guard-error-rate", "0.5"];
    let (gw, hash) = serve_snapshot(dir.path(), "gw", &snapshot, &args, &[]).await;
    let client = reqwest::Client::new();

    // Failures until the first baseline answer.
    let mut failed = 0;
    loop {
        let (status, tag) = get(&client, &gw).await;
        if status == 200 {
            assert_eq!(tag, "baseline");
            break;
        }
        assert_eq!((status, tag.as_str()), (500, "candidate"));
        failed += 1;
        assert!(
            failed <= MIN_REQUESTS + 2,
            "the guard did not trip after {failed} failures; log:\n{}",
            plain_log(&gw)
        );
    }
    assert!(failed >= MIN_REQUESTS, "tripped after only {failed}");
    assert_served(&client, &gw, "baseline", 20).await;

    let report = cohorts(&client, &gw).await;
    let candidate = cohort(&report, Some("r-bad"));
    assert_eq!(candidate["guard_tripped"], true, "{report}");
    assert_eq!(candidate["requests"], failed as u64, "{report}");
    assert_eq!(candidate["upstream_errors"], failed as u64, "{report}");
    assert_eq!(cohort(&report, None)["requests"], 21, "{report}");
    assert_eq!(
        metric(&client, &gw, "rampart_gateway_local_guard_trips_total").await,
        1.0
    );
    one_log_line(&gw, "local guard tripped", &["r-bad"]);
    // The snapshot itself did not change: the guard is local and per rollout.
    let (_, ready) = readyz(&client, &gw).await;
    assert!(ready.contains(&hash), "{ready}");
}

/// 7b. The same, with the candidate sending the route to a *new* upstream (the usual way to
/// move traffic to another backend). The gateway builds connection pools from the baseline's
/// upstreams only, and indexed them with the candidate's upstream index, so this request
/// panicked while the gateway planned it (outside the `catch_unwind` around evaluation): the
/// connection was dropped, nothing was counted, and the local guard never tripped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_guard_drops_a_candidate_routed_to_a_new_failing_upstream() {
    const MIN_REQUESTS: usize = 20;
    let (good, broken) = (upstream("good").await, upstream("broken").await);
    let dir = tempfile::tempdir().unwrap();
    let baseline = fleet(good.addr, "baseline", None);
    // The candidate adds `broken-pool` and routes to it; the request header makes the broken
    // upstream answer 500 to everything.
    let candidate = fleet(good.addr, "candidate", Some(("x-test-status", "500")))
        .replace(
            "policies:\n",
            &format!(
                "  - name: broken-pool\n    endpoints: [\"{}\"]\npolicies:\n",
                broken.addr
            ),
        )
        .replace("    upstream: app-pool", "    upstream: broken-pool");
    let snapshot = with_rollout(&baseline, "r-new-upstream", &candidate);
    let args = ["--guard-min-requests", &MIN_REQUESTS.to_string()];
    let (gw, _) = serve_snapshot(dir.path(), "gw", &snapshot, &args, &[]).await;
    let client = reqwest::Client::new();

    let mut failed = 0;
    loop {
        let r = client.get(gw.url("/")).send().await;
        let r = r.unwrap_or_else(|e| {
            panic!(
                "candidate request {failed} failed at the connection: {e}; log:\n{}",
                plain_log(&gw)
            )
        });
        let tag = r.headers()["x-config"].to_str().unwrap().to_owned();
        if r.status() == 200 {
            assert_eq!(tag, "baseline");
            break;
        }
        assert_eq!((r.status().as_u16(), tag.as_str()), (500, "candidate"));
        failed += 1;
        assert!(failed <= MIN_REQUESTS + 2, "the guard did not trip");
    }
    assert_eq!(failed, MIN_REQUESTS);
    assert_eq!(
        broken.hits.load(Relaxed),
        failed as u64,
        "the candidate's upstream"
    );
    let report = cohorts(&client, &gw).await;
    assert_eq!(
        cohort(&report, Some("r-new-upstream"))["guard_tripped"],
        true
    );
}

/// 7c. The same root cause without a panic: a candidate that moves an existing upstream to
/// other endpoints still sends its traffic to the baseline's endpoints, because the pools are
/// built from the baseline's upstream definitions only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_upstream_change_reaches_the_candidate_endpoints() {
    let (old, new) = (upstream("old").await, upstream("new").await);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = baseline_and_candidate("r-move", old.addr, new.addr, None);
    let (gw, _) = serve_snapshot(dir.path(), "gw", &snapshot, &[], &[]).await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let r = client.get(gw.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-config"], "candidate");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["upstream"], "new",
            "the candidate's endpoint; got {body}"
        );
    }
    assert_eq!(old.hits.load(Relaxed), 0);
}
