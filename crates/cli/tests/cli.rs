//! The `rampart` binary on good and bad input: one clear message each, never a panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("rampart runs")
}

fn example() -> String {
    format!("{}/../../examples/fleet.yaml", env!("CARGO_MANIFEST_DIR"))
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `validate` on a bad file and returns its stderr, checking the failure is clean.
#[track_caller]
fn refused(name: &str, text: &str) -> String {
    let path = temp_file(name, text);
    let out = rampart(&["validate", "-f", path.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    stderr
}

/// Runs `validate` on a file that does not parse: one line on stderr, which contains each of
/// `wants`.
#[track_caller]
fn refused_in_one_line(name: &str, text: &str, wants: &[&str]) {
    let stderr = refused(name, text);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for want in wants {
        assert!(stderr.contains(want), "{stderr}");
    }
}

#[test]
fn example_is_valid() {
    let out = rampart(&["validate", "-f", &example()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("valid (3 products, 3 upstreams, 15 policies, 12 routes, 7 flags)"),
        "{stdout}"
    );
}

#[test]
fn missing_file() {
    let out = rampart(&["validate", "-f", "/nonexistent/fleet.yaml"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr.trim(),
        "error: cannot read /nonexistent/fleet.yaml: No such file or directory (os error 2)"
    );
}

#[test]
fn invalid_yaml_names_the_line() {
    refused_in_one_line(
        "syntax.yaml",
        "environment: prod\nroutes: [\n",
        &["syntax.yaml: the document: ", "(line 3, column 1)"],
    );
}

#[test]
fn wrong_type_names_the_field() {
    refused_in_one_line(
        "type.yaml",
        "environment: prod\nupstreams:\n  - name: a\n    endpoints: 5\n",
        &["upstreams[0].endpoints: invalid type: integer `5`, expected a sequence"],
    );
}

#[test]
fn unknown_field_names_the_field() {
    refused_in_one_line(
        "unknown.yaml",
        "environment: prod\nroutez: []\n",
        &["routez: unknown field `routez`, expected one of"],
    );
}

#[test]
fn every_validation_error_is_printed_with_its_path() {
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace(
            "rate_limit: { per_second: 20, burst: 40, key: client_ip }",
            "rate_limit: { per_second: 0, burst: 40, key: client_ip }",
        )
        .replace(
            "upstream: confluence-app\n    policies: [robots]",
            "upstream: confluence-ap\n    policies: [robots]",
        );
    let stderr = refused("semantic.yaml", &text);
    assert!(stderr.contains("2 validation error(s)"), "{stderr}");
    assert!(
        stderr.contains("  policies[1].rate_limit.per_second: 0 is outside the range 1..=1000000"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  routes[4].upstream: no upstream is named `confluence-ap`"),
        "{stderr}"
    );
}

#[test]
fn deny_all_needs_a_declaration() {
    let text = std::fs::read_to_string(example()).unwrap().replace(
        "  - name: jira-maintenance\n    type: bool\n    default: false",
        "  - name: jira-maintenance\n    type: bool\n    default: true",
    );
    let path = temp_file("maint.yaml", &text);
    let out = rampart(&["validate", "-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes[3].policies[1]: policy `jira-maintenance-page` denies all traffic on route `jira-web`"));
    let out = rampart(&[
        "validate",
        "-f",
        path.to_str().unwrap(),
        "--declare-deny-all",
        "jira-web",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn snapshot_prints_a_loadable_snapshot_and_its_hash() {
    let out = rampart(&["snapshot", "-f", &example()]);
    assert!(out.status.success());
    let json = String::from_utf8(out.stdout).unwrap();
    let snapshot = rampart_model::Snapshot::from_json(&json).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim(), format!("sha256:{}", snapshot.hash()));
    let out = rampart(&["snapshot", "-f", &example(), "--hash-only"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        snapshot.hash().to_string()
    );
}

/// `gateway --env` takes an environment's name and nothing else: anything else is refused
/// with the value and the names it accepts, before the gateway starts.
#[test]
fn gateway_refuses_an_unknown_environment() {
    let out = rampart(&["gateway", "--cell", "c", "--id", "g", "--env", "production"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value 'production' for '--env <ENV>'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[possible values: dev, staging, prod]"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// Commands that read one environment's resource refuse a name that is no environment before
/// any call: the server named here does not exist, so reaching it would fail differently.
#[test]
fn a_bad_environment_is_refused_before_any_call() {
    let huge = "p".repeat(10_000);
    for env in [
        "production",
        "PROD",
        "",
        " prod",
        "pro\u{301}d",
        "../prod",
        huge.as_str(),
    ] {
        for cmd in [
            &["flag", "list", "--env", env][..],
            &["flag", "get", "x", "--env", env],
            &["change", "list", "--env", env],
            &["rollout", "list", "--env", env],
        ] {
            let mut args = cmd.to_vec();
            args.extend(["--server", "http://127.0.0.1:9", "--token", "t"]);
            let out = rampart(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd:?}: {stderr}");
            assert!(stderr.contains("environment"), "{cmd:?}: {stderr}");
            assert!(
                !stderr.contains("127.0.0.1:9"),
                "{cmd:?} called out: {stderr}"
            );
        }
    }
}
