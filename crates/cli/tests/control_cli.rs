//! The control plane's CLI against a real `rampart control` process on loopback, with a
//! SQLite database in a temporary directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");

fn example_fleet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet.yaml")
}

/// A running `rampart control`; killed on drop.
struct Control {
    child: Child,
    server: String,
    admin: String,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Control {
    fn start() -> Control {
        Control::start_in(tempfile::tempdir().expect("tempdir"), None)
    }

    /// Start on the database in `dir`; `admin` is the token of an earlier start, if any (a
    /// second start prints none).
    fn start_in(dir: tempfile::TempDir, admin: Option<String>) -> Control {
        let token_file = dir.path().join("admin-token");
        let mut child = Command::new(BIN)
            .arg("control")
            .arg("--db")
            .arg(db_url(dir.path()))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--bootstrap-token-file")
            .arg(&token_file)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn rampart control");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut admin_line = None;
        let mut server = None;
        while server.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("rampart control printed its address in time");
            if let Some(t) = line.strip_prefix("admin token: ") {
                admin_line = Some(t.trim().to_owned());
            }
            if let Some(a) = line.strip_prefix("rampart control listening on ") {
                server = Some(a.trim().to_owned());
            }
        }
        let printed = admin_line;
        let admin = match admin {
            Some(earlier) => {
                assert_eq!(printed, None, "a second start prints no new token");
                earlier
            }
            None => {
                let admin = printed.expect("a first start prints the admin token");
                assert!(admin.starts_with("rpt_"), "{admin}");
                let from_file = std::fs::read_to_string(&token_file).expect("the token file");
                assert_eq!(from_file.trim(), admin);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
                    assert_eq!(mode & 0o777, 0o600);
                }
                admin
            }
        };
        Control {
            child,
            server: server.unwrap(),
            admin,
            dir: Some(dir),
        }
    }

    /// Run the CLI with this server and `token`.
    fn run(&self, token: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("RAMPART_SERVER", &self.server)
            .env("RAMPART_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run rampart")
    }

    /// Run, expect exit code 1 and `expected` on stderr.
    fn fails(&self, token: &str, args: &[&str], expected: &str) {
        let o = self.run(token, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expected), "{args:?}: {}", show(&o));
    }

    /// Run, expect success, and parse stdout as JSON (`--json` is added).
    fn json(&self, token: &str, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let o = self.run(token, &args);
        assert!(o.status.success(), "{args:?}: {}", show(&o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", show(&o)))
    }

    /// A new user token with `role`, created with the admin token over the API.
    fn token(&self, name: &str, role: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let resp = reqwest::Client::new()
                .post(format!("{}/v1/tokens", self.server))
                .bearer_auth(&self.admin)
                .json(&serde_json::json!({ "name": name, "role": role }))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("POST /v1/tokens");
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            v["secret"].as_str().expect("a secret").to_owned()
        })
    }
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("control.db").display())
}

impl Control {
    /// Stop the process (SIGTERM) and keep its directory.
    fn stop(mut self) -> (tempfile::TempDir, String) {
        // SIGTERM: a graceful stop, exit 0.
        #[cfg(unix)]
        {
            let sent = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .expect("kill -TERM");
            assert!(sent.success());
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            let status = loop {
                if let Some(s) = self.child.try_wait().expect("try_wait") {
                    break s;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "rampart control did not stop on SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(status.success(), "{status:?}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.dir.take().unwrap(), self.admin.clone())
    }
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fleet_path() -> String {
    example_fleet().display().to_string()
}

#[test]
fn apply_approve_apply_then_diff_is_empty() {
    let c = Control::start();
    let fleet = fleet_path();
    let admin = c.admin.clone();

    // Before anything, staging is empty: every object is an addition.
    let d = c.json(&admin, &["diff", "-f", &fleet, "--env", "staging"]);
    let diff = d["diff"].as_array().unwrap();
    assert!(!diff.is_empty());
    assert!(diff.iter().all(|o| o["op"] == "add"), "{d}");

    // Human output of apply: the plan, then the change. Adding policies and routes is critical
    // risk, which staging's defaults let through with two approvals (no soak, no window).
    let o = c.run(
        &admin,
        &[
            "apply", "-f", &fleet, "--env", "staging", "--reason", "first",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("+ route jira-rest: add"), "{text}");
    assert!(text.contains("plan: "), "{text}");
    assert!(text.contains("awaiting_approval (risk critical"), "{text}");
    let list = c.json(&admin, &["change", "list", "--env", "staging"]);
    let changes = list["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{list}");
    let id = changes[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(changes[0]["status"], "awaiting_approval");
    assert_eq!(changes[0]["risk"], "critical");

    // Not applied yet: the diff is unchanged.
    let d = c.json(&admin, &["diff", "-f", &fleet, "--env", "staging"]);
    assert_eq!(d["diff"].as_array().unwrap().len(), diff.len());

    // The author cannot approve their own change.
    c.fails(&admin, &["change", "approve", &id], "403");

    // Applying before the approvals is refused with what is missing.
    c.fails(&admin, &["change", "apply", &id], "not_ready");

    let alice = c.token("alice", "approver");
    let bob = c.token("bob", "approver");
    let v = c.json(&alice, &["change", "approve", &id]);
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "{v}");
    let o = c.run(&bob, &["change", "approve", &id]);
    assert!(o.status.success(), "{}", show(&o));
    let v = c.json(&admin, &["change", "show", &id]);
    assert_eq!(v["status"], "approved", "{v}");

    let v = c.json(&admin, &["change", "apply", &id]);
    assert_eq!(v["change"]["status"], "applied", "{v}");
    assert!(v["snapshot"]["hash"].as_str().is_some(), "{v}");

    // Applied: the file and the environment agree.
    let d = c.json(&admin, &["diff", "-f", &fleet, "--env", "staging"]);
    assert_eq!(d["diff"], serde_json::json!([]), "{d}");
    let o = c.run(&admin, &["diff", "-f", &fleet, "--env", "staging"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("no changes"),
        "{}",
        show(&o)
    );
    // And apply of the same file submits nothing.
    let o = c.run(&admin, &["apply", "-f", &fleet, "--env", "staging"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no changes"));

    // An edited fleet shows one changed object with its changed field.
    let text = std::fs::read_to_string(example_fleet()).unwrap();
    let mut cfg: rampart_model::Config = rampart_model::load::from_yaml(&text).unwrap();
    let product = cfg.products[0].name.clone();
    cfg.products[0].description = "edited by the test".into();
    let dir = tempfile::tempdir().unwrap();
    let edited = write(&dir, "edited.json", &serde_json::to_string(&cfg).unwrap());
    let d = c.json(&admin, &["diff", "-f", &edited, "--env", "staging"]);
    assert_eq!(
        d["diff"],
        serde_json::json!([{ "kind": "product", "name": product, "op": "change", "fields": ["description"] }]),
        "{d}"
    );
    let o = c.run(&admin, &["diff", "-f", &edited, "--env", "staging"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("~ product {product}: change (description)")),
        "{text}"
    );

    // Flags are readable.
    let flags = c.json(&admin, &["flag", "list", "--env", "staging"]);
    let first = flags["flags"][0]["name"].as_str().unwrap().to_owned();
    let f = c.json(&alice, &["flag", "get", &first, "--env", "staging"]);
    assert_eq!(f["name"], first.as_str());
    c.fails(
        &admin,
        &["flag", "get", "no-such-flag", "--env", "staging"],
        "404 not_found",
    );

    // The audit chain holds.
    let o = c.run(&admin, &["audit", "verify"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("audit log OK"));
    let v = c.json(&admin, &["audit", "verify"]);
    assert_eq!(v["ok"], true);
}

/// Write `text` to the file `name` in `dir`; its path.
fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Every object of a config, as upsert edits.
fn upserts(cfg: &rampart_model::Config) -> Vec<rampart_model::change::Edit> {
    use rampart_model::change::{Edit, Object};
    let objects = (cfg.products.iter().cloned().map(Object::Product))
        .chain(cfg.upstreams.iter().cloned().map(Object::Upstream))
        .chain(cfg.policies.iter().cloned().map(Object::Policy))
        .chain(cfg.routes.iter().cloned().map(Object::Route))
        .chain(cfg.flags.iter().cloned().map(Object::Flag));
    objects.map(Edit::Upsert).collect()
}

#[test]
fn submit_from_a_file_then_reject() {
    let c = Control::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "change.yaml",
        "environment: dev\nreason: a product\nedits:\n  - upsert:\n      product:\n        name: demo\n        description: a demo\n",
    );
    let editor = c.token("eve", "editor");
    // The server validates it whole: a product without routes is rejected, with its path.
    let o = c.run(&editor, &["change", "submit", "-f", &file]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("422 invalid"), "{err}");
    assert!(err.contains("recorded as rejected"), "{err}");
    assert!(err.contains("products[0]: "), "{err}");

    // The whole example fleet as one change file (JSON).
    let text = std::fs::read_to_string(example_fleet()).unwrap();
    let edits = upserts(&rampart_model::load::from_yaml(&text).unwrap());
    let change = serde_json::json!({ "environment": "dev", "reason": "the fleet", "edits": edits });
    let file = write(&dir, "change.json", &change.to_string());
    let v = c.json(&editor, &["change", "submit", "-f", &file]);
    let id = v["id"].as_str().expect("an id").to_owned();
    assert_eq!(v["env"], "dev");
    assert_eq!(v["author"], "eve");
    let approver = c.token("alice", "approver");
    let o = c.run(&approver, &["change", "reject", &id, "--reason", "no"]);
    assert!(o.status.success(), "{}", show(&o));
    let v = c.json(&editor, &["change", "show", &id]);
    assert_eq!(v["status"], "rejected", "{v}");
    // A rejected change cannot be applied.
    c.fails(&c.admin, &["change", "apply", &id], "409");
    // An editor may not approve.
    c.fails(&editor, &["change", "approve", &id], "403 forbidden");
}

#[test]
fn bad_token_and_unreachable_server_are_one_clear_line() {
    let c = Control::start();
    let o = c.run("rpt_0000", &["flag", "list", "--env", "prod"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("401 unauthorized"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let o = Command::new(BIN)
        .args(["audit", "verify", "--server", "http://127.0.0.1:1"])
        .env("RAMPART_TOKEN", &c.admin)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach the control plane"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    c.fails(&c.admin, &["change", "show", "chg_nope"], "404");
}

#[test]
fn bad_fleet_files_show_their_paths() {
    let c = Control::start();
    let dir = tempfile::tempdir().unwrap();
    // A wrong field: a parse error with its path.
    let bad = write(
        &dir,
        "bad.yaml",
        "environment: staging\nproducts:\n  - name: x\n    colour: red\n",
    );
    let o = c.run(&c.admin, &["apply", "-f", &bad, "--env", "staging"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("products[0]"), "{err}");

    // A route to an unknown upstream: validation errors with paths; nothing is submitted.
    let text = std::fs::read_to_string(example_fleet()).unwrap();
    let mut cfg: rampart_model::Config = rampart_model::load::from_yaml(&text).unwrap();
    cfg.upstreams.remove(0);
    let invalid = write(&dir, "invalid.json", &serde_json::to_string(&cfg).unwrap());
    let o = c.run(&c.admin, &["apply", "-f", &invalid, "--env", "staging"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("validation error"), "{err}");
    assert!(err.contains("routes["), "{err}");
    let list = c.json(&c.admin, &["change", "list", "--env", "staging"]);
    assert_eq!(list["changes"], serde_json::json!([]));
}

#[test]
fn fleet_audit_tampering_and_restart() {
    let c = Control::start();
    // The fleet view of an environment without gateways.
    let v = c.json(&c.admin, &["fleet", "--env", "staging"]);
    assert_eq!(v["gateways"], serde_json::json!([]), "{v}");
    let o = c.run(&c.admin, &["fleet", "--env", "staging"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 gateway(s) in staging"));

    // Some audited events: two tokens.
    c.token("alice", "approver");
    c.token("bob", "viewer");
    let o = c.run(&c.admin, &["audit", "verify"]);
    assert!(o.status.success(), "{}", show(&o));

    // Someone edits an entry in the database: verify names it and exits 1.
    let url = db_url(c.dir.as_ref().unwrap().path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = rampart_store::Store::connect(&url).await.unwrap();
        sqlx::query("UPDATE audit SET actor = $1 WHERE seq = $2")
            .bind("mallory")
            .bind(2_i64)
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
    });
    let o = c.run(&c.admin, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("broken at seq 2"), "{err}");

    // A restart reuses the data: no new admin token, and the old one still works.
    let (dir, admin) = c.stop();
    let c = Control::start_in(dir, Some(admin));
    let o = c.run(&c.admin, &["change", "list", "--env", "prod"]);
    assert!(o.status.success(), "{}", show(&o));
}
