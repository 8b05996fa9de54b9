//! The gateway process serves the example fleet end to end.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_example_fleet() {
    let (jira, jira2) = (upstream("jira").await, upstream("jira2").await);
    let (conf, bb, bb2) = (
        upstream("confluence").await,
        upstream("bitbucket").await,
        upstream("bitbucket2").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    write_atomic(
        &fleet,
        &example_fleet(&[
            ("127.0.0.1:18081", jira.addr),
            ("127.0.0.1:18091", jira2.addr),
            ("127.0.0.1:18082", conf.addr),
            ("127.0.0.1:18083", bb.addr),
            ("127.0.0.1:18093", bb2.addr),
        ]),
    );
    let gw = start_gateway_with_args(Some(&fleet), &dir.path().join("gw"), &[], &[]);
    gw.wait_for_snapshot(None).await;
    let r = get_as("jira.example.com", &gw.url("/browse/X-1")).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["upstream"].as_str().unwrap().starts_with("jira"),
        "{body}"
    );
    let r = get_as("jira.example.com", &gw.url("/rest/api/2/issue")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-rampart-error"], "missing_credentials");
}

/// GET `url` with this host header.
async fn get_as(host: &str, url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header("host", host)
        .send()
        .await
        .unwrap()
}

/// A running `rampart up`, with what it printed.
struct Up {
    child: std::process::Child,
    proxy: String,
    control: String,
    token: String,
}

/// The example fleet with its five demo endpoints moved to free loopback ports.
fn free_example_fleet() -> String {
    let ports: Vec<std::net::SocketAddr> = (0..5)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    example_fleet(&[
        ("127.0.0.1:18081", ports[0]),
        ("127.0.0.1:18091", ports[1]),
        ("127.0.0.1:18082", ports[2]),
        ("127.0.0.1:18083", ports[3]),
        ("127.0.0.1:18093", ports[4]),
    ])
}

/// A temporary directory with `fleet.yaml` in it, the example fleet on free ports; its path
/// and text.
fn free_fleet_file() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    let text = free_example_fleet();
    write_atomic(&fleet, &text);
    (dir, fleet, text)
}

/// `rampart up` on ephemeral ports, to be given its fleet and data directory.
fn up_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(rampart_bin());
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
    ]);
    cmd
}

/// Start `rampart up` on ephemeral ports with this fleet file and data directory.
fn start_up(fleet: &std::path::Path, data: &std::path::Path, env: &[(&str, &str)]) -> Up {
    let mut cmd = up_command();
    cmd.arg("-f")
        .arg(fleet)
        .arg("--data-dir")
        .arg(data)
        .envs(env.iter().copied());
    Up::spawn(cmd)
}

impl Up {
    /// Start it and read the addresses and the admin token it prints.
    fn spawn(mut cmd: std::process::Command) -> Self {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let lines: Vec<String> = std::io::BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.contains("Ctrl-C"))
            .collect();
        let word_after = |prefix: &str| {
            lines
                .iter()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(prefix)
                        .and_then(|r| r.split_whitespace().next())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
        };
        let token = lines
            .iter()
            .find_map(|l| l.split("admin token: ").nth(1))
            .unwrap()
            .trim()
            .to_owned();
        Up {
            proxy: word_after("proxy   http://"),
            control: word_after("control http://"),
            token,
            child,
        }
    }

    /// Run a client command against this control plane; it must succeed.
    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|err| panic!("{args:?}: {err}"))
    }

    /// The body of the wiki's robots.txt through the gateway.
    async fn robots(&self) -> String {
        let url = format!("http://{}/robots.txt", self.proxy);
        get_as("acme.atlassian-wiki.example.com", &url)
            .await
            .text()
            .await
            .unwrap()
    }

    /// Wait (30 s at most) until the gateway serves `want` as robots.txt.
    async fn wait_for_robots(&self, want: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let got = self.robots().await;
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "robots.txt is still {got:?}, not {want:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Apply the fleet file to dev through a change, as an operator would.
    fn apply(&self, fleet: &std::path::Path) {
        let submitted: serde_json::Value = serde_json::from_str(&self.cli(&[
            "apply",
            "-f",
            fleet.to_str().unwrap(),
            "--env",
            "dev",
            "--json",
        ]))
        .unwrap();
        assert_eq!(submitted["change"]["status"], "approved", "{submitted}");
        let id = submitted["change"]["id"].as_str().unwrap();
        // The impact test needs the demo traffic's samples first: until they arrive, apply
        // is refused with "only N samples" and nothing is written; then it goes through.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = self.try_cli(&["change", "apply", id]);
            match out {
                Ok(_) => return,
                Err(e) if e.contains("samples") && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                Err(e) => panic!("change apply: {e}"),
            }
        }
    }

    /// Run a client command; its stdout, or its stderr if it failed.
    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = std::process::Command::new(rampart_bin())
            .args(args)
            .args([
                "--server",
                &format!("http://{}", self.control),
                "--token",
                &self.token,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Wait (60 s at most) until the newest rollout of dev has ended in `state`.
    async fn wait_for_rollout(&self, state: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let list: serde_json::Value =
                serde_json::from_str(&self.cli(&["rollout", "list", "--env", "dev", "--json"]))
                    .unwrap();
            let newest = list["rollouts"][0].clone();
            if newest["state"] == state {
                return newest;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the rollout did not reach {state}: {newest}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success());
    }
}

const OLD_ROBOTS: &str = "User-agent: *\nDisallow: /rest/\n";
const NEW_ROBOTS: &str = "User-agent: *\nDisallow: /\n";

/// The fleet with robots.txt disallowing everything.
fn edited(text: &str) -> String {
    let edited = text.replace(r#"Disallow: /rest/\n"#, r#"Disallow: /\n"#);
    assert_ne!(edited, text);
    edited
}

/// `rampart up` runs a control plane, demo upstreams and a gateway that follows the control
/// plane; `rampart apply` of an edited fleet reaches the gateway; SIGTERM stops it cleanly; a
/// second start reuses the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_then_apply_reaches_the_gateway() {
    let (dir, fleet, text) = free_fleet_file();
    let data = dir.path().join("data");
    let up = start_up(&fleet, &data, &[]);
    // The gateway receives its first snapshot from the control plane's stream.
    up.wait_for_robots(OLD_ROBOTS).await;
    write_atomic(&fleet, &edited(&text));
    up.apply(&fleet);
    // The change rolls out (25%, then 100%) on the demo's traffic and becomes the LKG.
    let rollout: rampart_api::RolloutView =
        serde_json::from_value(up.wait_for_rollout("succeeded").await).unwrap();
    let actions: Vec<&str> = rollout.decisions.iter().map(|d| d.action.into()).collect();
    assert_eq!(actions, ["started", "advanced", "succeeded"], "{rollout:?}");
    up.wait_for_robots(NEW_ROBOTS).await;
    assert!(up.cli(&["fleet", "--env", "dev"]).contains("gw-1"));
    let token = up.token.clone();
    up.stop();
    // A second start reuses the data: same token, the applied config served again.
    let up = start_up(&fleet, &data, &[]);
    assert_eq!(up.token, token);
    up.wait_for_robots(NEW_ROBOTS).await;
    up.stop();
}

/// A snapshot the gateway refuses shows in `rampart fleet` while the gateway keeps serving
/// the one it has (real processes: `rampart up` with a failpoint that refuses every snapshot
/// after the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_snapshot_shows_in_the_fleet_while_the_gateway_serves() {
    let (dir, fleet, text) = free_fleet_file();
    let up = start_up(
        &fleet,
        &dir.path().join("data"),
        &[("FAILPOINTS", "gateway::refuse=1*off->return")],
    );
    up.wait_for_robots(OLD_ROBOTS).await;
    write_atomic(&fleet, &edited(&text));
    up.apply(&fleet);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let fleet_view = up.cli(&["fleet", "--env", "dev"]);
        if fleet_view.contains("gateway::refuse failpoint") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no NACK in the fleet view: {fleet_view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        up.robots().await,
        OLD_ROBOTS,
        "the gateway keeps serving what it had"
    );
    up.stop();
}

/// `rampart up` started in an empty directory serves the demo: the example fleet is built into
/// the binary, and the data directory is `./rampart-data` of where it started. (Its demo
/// upstreams go to free ports, so that it runs next to other tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_demo_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = up_command();
    cmd.arg("--free-demo-ports").current_dir(dir.path());
    let up = Up::spawn(cmd);
    // The gateway serves the example fleet, received from the control plane.
    up.wait_for_robots(OLD_ROBOTS).await;
    // A demo route answers through its demo upstream.
    let r = get_as(
        "jira.example.com",
        &format!("http://{}/browse/X-1", up.proxy),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["upstream"].as_str().unwrap().starts_with("jira-app-"),
        "{body}"
    );
    // The control plane answers: the fleet went in through a change, and the gateway reports.
    let changes = up.cli(&["change", "list", "--env", "dev"]);
    assert!(
        changes.contains("rampart up: load the example fleet"),
        "{changes}"
    );
    assert!(up.cli(&["fleet", "--env", "dev"]).contains("gw-1"));
    assert!(dir.path().join("rampart-data/control.db").is_file());
    assert!(dir.path().join("rampart-data/admin-token").is_file());
    up.stop();
}
