//! `settings.paths` through an in-process gateway: each value of each setting decides what
//! is routed and what the upstream receives (the normaliser's own cases are unit tests in
//! rampart-model).

mod support;

use support::*;

/// A gateway with `settings` (the body of `settings.paths`) whose route `/admin/` is denied
/// and whose other paths reach the upstream.
async fn gateway(settings: &str) -> (Upstream, Gateway) {
    app_gateway(&format!(
        r#"
settings: {{ paths: {{ {settings} }} }}
policies:
  - {{ id: closed, access: {{ default: deny, deny_status: 403 }} }}
routes:
  - {{ id: admin, product: app, match: {{ path: {{ prefix: /admin/ }} }}, upstream: app, policies: [closed] }}
  - {{ id: rest, product: app, match: {{ path: {{ prefix: / }} }}, upstream: app }}
"#
    ))
    .await
}

/// The status, `x-rampart-error` (or `location` on a redirect) and the target the upstream
/// saw, of a raw `GET target`.
async fn get(gw: &Gateway, target: &str) -> (u16, String, String) {
    let raw = raw_http1(
        gw,
        &format!("GET {target} HTTP/1.1\r\nHost: a.example.com\r\n"),
    )
    .await;
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        raw.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let note = if status == 307 {
        header("location")
    } else {
        header("x-rampart-error")
    };
    let uri = if status == 200 {
        raw_echo(&raw)["uri"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_default()
    } else {
        String::new()
    };
    (status, note, uri)
}

fn ok(uri: &str) -> (u16, String, String) {
    (200, String::new(), uri.to_owned())
}

fn refused(status: u16, code: &str) -> (u16, String, String) {
    (status, code.to_owned(), String::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_merge_slashes_and_refuse_parameters_and_escaped_slashes() {
    let (up, gw) = gateway("").await;
    assert_eq!(get(&gw, "//admin//x").await, refused(403, "access_denied"));
    assert_eq!(get(&gw, "/a//b/%7Ec?q=//").await, ok("/a/b/~c?q=//"));
    assert_eq!(get(&gw, "/a;x/b").await, refused(400, "path_parameters"));
    assert_eq!(get(&gw, "/a%2Fb").await, refused(400, "escaped_slash"));
    assert_eq!(get(&gw, "/a%5Cb").await, refused(400, "escaped_slash"));
    assert_eq!(
        get(&gw, "/a%zz").await,
        refused(400, "invalid_percent_encoding")
    );
    assert_eq!(get(&gw, "/a%C0%AF").await, refused(400, "invalid_utf8"));
    assert_eq!(get(&gw, "/a%00").await, refused(400, "control_character"));
    assert_eq!(
        up.hits(),
        1,
        "only the canonical request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slashes_kept_when_merge_slashes_is_off() {
    let (_up, gw) = gateway("merge_slashes: false").await;
    // `//admin/x` is not under `/admin/` then: it goes to `rest`, and the upstream gets
    // exactly that path (what was checked is what is forwarded).
    assert_eq!(get(&gw, "//admin/x").await, ok("//admin/x"));
    // `..` removes the empty segment: `/x//../admin/y` is `/x/admin/y`.
    assert_eq!(get(&gw, "/x//../admin/y").await, ok("/x/admin/y"));
    assert_eq!(
        get(&gw, "/x/../admin/y").await,
        refused(403, "access_denied")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_stripped_before_matching_and_forwarding() {
    let (_up, gw) = gateway("path_parameters: strip").await;
    assert_eq!(
        get(&gw, "/admin;x=1/y").await,
        refused(403, "access_denied")
    );
    assert_eq!(
        get(&gw, "/public/..;/admin/y").await,
        refused(403, "access_denied")
    );
    assert_eq!(get(&gw, "/a;jsessionid=1/b;v=2?q=;").await, ok("/a/b?q=;"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_slashes_kept_as_characters() {
    let (_up, gw) = gateway("escaped_slashes: keep").await;
    assert_eq!(get(&gw, "/x%2f..%2fadmin/y").await, ok("/x%2F..%2Fadmin/y"));
    assert_eq!(get(&gw, "/a%5cb").await, ok("/a%5Cb"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_slashes_decoded_and_forwarded() {
    let (_up, gw) = gateway("escaped_slashes: decode_and_forward").await;
    assert_eq!(
        get(&gw, "/x%2f..%2fadmin/y").await,
        refused(403, "access_denied")
    );
    assert_eq!(get(&gw, "/a%2Fb%5Cc").await, ok("/a/b/c"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_slashes_decoded_and_redirected() {
    let (up, gw) = gateway("escaped_slashes: decode_and_redirect").await;
    assert_eq!(
        get(&gw, "/a%2Fb?q=1").await,
        (307, "/a/b?q=1".to_owned(), String::new())
    );
    assert_eq!(
        get(&gw, "/x%2F..%2Fadmin/y").await,
        (307, "/admin/y".to_owned(), String::new())
    );
    assert_eq!(up.hits(), 0, "a redirect is answered before routing");
    assert_eq!(get(&gw, "/admin/y").await, refused(403, "access_denied"));
    assert_eq!(get(&gw, "/a//b").await, ok("/a/b"));
}
