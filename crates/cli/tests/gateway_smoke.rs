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

/// `rampart up` starts the fleet's demo upstreams and a gateway, serves, and stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_demo_and_stops_cleanly() {
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
    write_atomic(
        &fleet,
        &example_fleet(&[
            ("127.0.0.1:18081", ports[0]),
            ("127.0.0.1:18091", ports[1]),
            ("127.0.0.1:18082", ports[2]),
            ("127.0.0.1:18083", ports[3]),
            ("127.0.0.1:18093", ports[4]),
        ]),
    );
    let mut child = std::process::Command::new(rampart_bin())
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "-f",
        ])
        .arg(&fleet)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proxy = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.trim()
                .strip_prefix("proxy   http://")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("up prints the proxy address");
    let r = reqwest::Client::new()
        .get(format!("http://{proxy}/wiki/spaces"))
        .header("host", "acme.atlassian-wiki.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["upstream"], "confluence-app-1");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    assert!(dir.path().join("data/gateway-gw-1").is_dir());
}
