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
