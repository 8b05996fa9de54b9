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
    let gw = start_gateway(Some(&fleet), &dir.path().join("gw"), &[], &[]);
    gw.wait_for_snapshot(None).await;
    let client = reqwest::Client::new();
    let r = client
        .get(gw.url("/browse/X-1"))
        .header("host", "jira.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["upstream"].as_str().unwrap().starts_with("jira"),
        "{body}"
    );
    let r = client
        .get(gw.url("/rest/api/2/issue"))
        .header("host", "jira.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-rampart-error"], "missing_credentials");
}

/// `rampart up` runs a control plane, demo upstreams and a gateway that follows the control
/// plane; `rampart apply` of an edited fleet reaches the gateway; SIGTERM stops it cleanly; a
/// second start reuses the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_then_apply_reaches_the_gateway() {
    use std::io::BufRead;
    // Free loopback ports for the five demo endpoints.
    let ports: Vec<std::net::SocketAddr> = (0..5)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    let text = example_fleet(&[
        ("127.0.0.1:18081", ports[0]),
        ("127.0.0.1:18091", ports[1]),
        ("127.0.0.1:18082", ports[2]),
        ("127.0.0.1:18083", ports[3]),
        ("127.0.0.1:18093", ports[4]),
    ]);
    write_atomic(&fleet, &text);
    let data = dir.path().join("data");
    let start = || {
        let mut child = std::process::Command::new(rampart_bin())
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--control",
                "127.0.0.1:0",
                "-f",
            ])
            .arg(&fleet)
            .arg("--data-dir")
            .arg(&data)
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
        let proxy = word_after("proxy   http://");
        let control = word_after("control http://");
        let token = lines
            .iter()
            .find_map(|l| l.split("admin token: ").nth(1))
            .unwrap()
            .trim()
            .to_owned();
        (child, proxy, control, token)
    };
    let (mut child, proxy, control, token) = start();
    let client = reqwest::Client::new();
    let robots = || async {
        client
            .get(format!("http://{proxy}/robots.txt"))
            .header("host", "acme.atlassian-wiki.example.com")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // The gateway receives its first snapshot from the control plane's stream.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while robots().await != "User-agent: *\nDisallow: /rest/\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never got the fleet"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Edit the fleet and apply it through the control plane, as an operator would.
    let edited = text.replace(r#"Disallow: /rest/\n"#, r#"Disallow: /\n"#);
    assert_ne!(edited, text);
    write_atomic(&fleet, &edited);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(rampart_bin())
            .args(args)
            .args(["--server", &format!("http://{control}"), "--token", &token])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let submitted: serde_json::Value = serde_json::from_str(&cli(&[
        "apply",
        "-f",
        fleet.to_str().unwrap(),
        "--env",
        "dev",
        "--json",
    ]))
    .unwrap();
    let id = submitted["change"]["id"].as_str().unwrap().to_owned();
    assert_eq!(submitted["change"]["status"], "approved", "{submitted}");
    cli(&["change", "apply", &id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while robots().await != "User-agent: *\nDisallow: /\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "the applied change never reached the gateway"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(cli(&["fleet", "--env", "dev"]).contains("gw-1"));

    let stop = |child: &mut std::process::Child| {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(child.wait().unwrap().success());
    };
    stop(&mut child);
    // A second start reuses the data: same token, the applied config served again.
    let (mut child, proxy2, _, token2) = start();
    assert_eq!(token2, token);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let body = client
            .get(format!("http://{proxy2}/robots.txt"))
            .header("host", "acme.atlassian-wiki.example.com")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body == "User-agent: *\nDisallow: /\n" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after a restart: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop(&mut child);
}

/// A snapshot the gateway refuses shows in `rampart fleet` while the gateway keeps serving
/// the one it has (real processes: `rampart up` with a failpoint that refuses every snapshot
/// after the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_snapshot_shows_in_the_fleet_while_the_gateway_serves() {
    use std::io::BufRead;
    let ports: Vec<std::net::SocketAddr> = (0..5)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    let text = example_fleet(&[
        ("127.0.0.1:18081", ports[0]),
        ("127.0.0.1:18091", ports[1]),
        ("127.0.0.1:18082", ports[2]),
        ("127.0.0.1:18083", ports[3]),
        ("127.0.0.1:18093", ports[4]),
    ]);
    write_atomic(&fleet, &text);
    let mut child = std::process::Command::new(rampart_bin())
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "-f",
        ])
        .arg(&fleet)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("FAILPOINTS", "gateway::refuse=1*off->return")
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
    let (proxy, control) = (word_after("proxy   http://"), word_after("control http://"));
    let token = lines
        .iter()
        .find_map(|l| l.split("admin token: ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    let client = reqwest::Client::new();
    let robots = || async {
        client
            .get(format!("http://{proxy}/robots.txt"))
            .header("host", "acme.atlassian-wiki.example.com")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let old = "User-agent: *\nDisallow: /rest/\n";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while robots().await != old {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never got the fleet"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(rampart_bin())
            .args(args)
            .args(["--server", &format!("http://{control}"), "--token", &token])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    write_atomic(
        &fleet,
        &text.replace(r#"Disallow: /rest/\n"#, r#"Disallow: /\n"#),
    );
    let submitted: serde_json::Value = serde_json::from_str(&cli(&[
        "apply",
        "-f",
        fleet.to_str().unwrap(),
        "--env",
        "dev",
        "--json",
    ]))
    .unwrap();
    cli(&[
        "change",
        "apply",
        submitted["change"]["id"].as_str().unwrap(),
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let fleet_view = cli(&["fleet", "--env", "dev"]);
        if fleet_view.contains("gateway::refuse failpoint") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no NACK in the fleet view: {fleet_view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(robots().await, old, "the gateway keeps serving what it had");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}
