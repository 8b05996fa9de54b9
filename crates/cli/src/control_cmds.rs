//! The control plane's commands: `rampart control` (the server) and the clients over its admin
//! API (`diff`, `apply`, `flag`, `change`, `audit`, `fleet`).
//!
//! ```text
//! rampart control --db sqlite://rampart-data/control.db --listen 127.0.0.1:7070
//! export RAMPART_SERVER=http://127.0.0.1:7070 RAMPART_TOKEN=rpt_...
//! rampart diff -f fleet.yaml --env prod          # the object-level plan, like `terraform plan`
//! rampart apply -f fleet.yaml --env staging      # the plan, then one change of every edit
//! rampart change list|show|approve|reject|apply|submit ...
//! rampart flag list|get ... ; rampart fleet --env prod ; rampart audit verify
//! ```
//!
//! The first start of `rampart control` on an empty database creates an admin token and prints
//! it once (`admin token: rpt_...`; `--bootstrap-token-file` writes it to a 0600 file too);
//! then `rampart control listening on http://ADDR`.
//!
//! Client errors (network, 4xx, 5xx) are one line with the API's code and message, then one
//! line per field path; the command exits 1. Output is human-readable, or JSON with `--json`.

use rampart_api::{
    ApplyResponse, AuditReport, ChangeList, ConfigResponse, EmptyRequest, Role, SubmitRequest,
    TokenKind,
};
use rampart_model::EnumName;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rampart_control::rules::RulesConfig;
use rampart_control::service::Service;
use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::load::{from_json, from_yaml};
use rampart_model::{Config, DeclaredImpact, Environment};
use rampart_store::Store;
use rampart_store::ops::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Api, ApiFailure, client, enc, json_out, parse_env};
use crate::{FleetArgs, Reported, out, runtime, shutdown_signal};

// ---------------------------------------------------------------------------------------------
// The server.

#[derive(Debug, Args)]
pub(crate) struct ControlArgs {
    /// The database: `sqlite://PATH` (created if needed) or `postgres://...`.
    #[arg(long, default_value = "sqlite://rampart-data/control.db")]
    db: String,
    /// The admin API's listener.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// On first start (no tokens yet), also write the admin token to this file (mode 0600).
    #[arg(long, value_name = "PATH")]
    bootstrap_token_file: Option<PathBuf>,
    /// The control plane's configuration (YAML): `rules:` (approvals per risk and
    /// environment) and `rollouts:` (stages, soak, gates and the impact test per environment).
    /// Without it, the defaults of both.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// How often the rollout driver looks at each running rollout, in milliseconds.
    #[arg(long, default_value_t = 100)]
    rollout_tick_ms: u64,
}

/// The file given to `rampart control --config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ControlConfig {
    #[serde(default)]
    pub rules: Option<RulesConfig>,
    #[serde(default)]
    pub rollouts: rampart_control::plan::RolloutConfig,
}

impl ControlConfig {
    /// Read and check a configuration file; errors name the file and the field.
    pub(crate) fn load(path: &std::path::Path) -> Result<ControlConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: ControlConfig =
            from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for env in [Environment::Dev, Environment::Staging, Environment::Prod] {
            cfg.rollouts
                .for_env(env)
                .check(&format!("rollouts.{env}"))
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        Ok(cfg)
    }
}

/// Run the control plane until Ctrl-C or SIGTERM.
pub(crate) fn control(a: ControlArgs) -> Result<()> {
    runtime()?.block_on(async move {
        if let Some(path) = a.db.strip_prefix("sqlite://")
            && let Some(dir) = std::path::Path::new(path.split('?').next().unwrap_or(path))
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let store = Store::connect(&a.db)
            .await
            .with_context(|| format!("cannot open the database {}", redact(&a.db)))?;
        let cfg = match &a.config {
            Some(path) => ControlConfig::load(path)?,
            None => ControlConfig::default(),
        };
        let service =
            Service::new(store.clone(), cfg.rules.unwrap_or_default()).with_rollouts(cfg.rollouts);
        let tokens = store.list_tokens().await.context("cannot list tokens")?;
        if tokens.is_empty() {
            let (_, secret) = service
                .create_token("bootstrap", "admin", TokenKind::User, Some(Role::Admin))
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the admin token: {e}"))?;
            if let Some(path) = &a.bootstrap_token_file {
                write_secret(path, &secret)?;
            }
            out(&format!("admin token: {secret}"))?;
        }
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        out(&format!("rampart control listening on http://{addr}"))?;
        let engine = tokio::spawn(
            rampart_control::rollout::Engine::new(
                service.clone(),
                std::time::Duration::from_millis(a.rollout_tick_ms.max(10)),
            )
            .run(),
        );
        let app = rampart_control::api::router_with(service);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                shutdown_signal().await;
                tracing::info!("shutting down");
            })
            .await
            .context("the admin API failed");
        engine.abort();
        store.close().await;
        served
    })
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn write_secret(path: &std::path::Path, secret: &str) -> Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(f, "{secret}").with_context(|| format!("cannot write {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The client.

/// Where the control plane is and who is calling.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// The control plane's admin API.
    #[arg(
        long,
        env = "RAMPART_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub(crate) server: String,
    /// An API token (`rpt_...`).
    #[arg(long, env = "RAMPART_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The environment: dev, staging or prod.
    #[arg(long)]
    env: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The environment: dev, staging or prod.
    #[arg(long)]
    env: String,
    /// Why: recorded with the change.
    #[arg(long, default_value = "applied from a fleet file")]
    reason: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FlagArgs {
    #[command(subcommand)]
    cmd: FlagCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum FlagCmd {
    /// Every flag of an environment.
    List {
        #[arg(long)]
        env: String,
    },
    /// One flag.
    Get {
        name: String,
        #[arg(long)]
        env: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ChangeArgs {
    #[command(subcommand)]
    cmd: ChangeCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum ChangeCmd {
    /// Submit a change from a file (JSON or YAML): `{ environment?, reason, declared_impact?,
    /// edits, base_version? }`; without a base version, the environment's current one.
    Submit {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The environment, if the file does not name it.
        #[arg(long)]
        env: Option<String>,
    },
    /// A change, its approvals and what it lacks.
    Show { id: String },
    /// Approve a change (never your own).
    Approve { id: String },
    /// Reject a change.
    Reject {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The newest changes of an environment.
    List {
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Apply an approved change: a new snapshot of its environment.
    Apply { id: String },
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    cmd: AuditCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Check the audit log's hash chain; exit 1 if an entry was edited or removed.
    Verify,
}

#[derive(Debug, Args)]
pub(crate) struct FleetViewArgs {
    /// The environment: dev, staging or prod.
    #[arg(long)]
    env: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Environment-wide settings are not objects: no change edits them, so say when they differ.
fn settings_note(current: &Config, desired: &Config, env: Environment) {
    if current.settings != desired.settings {
        eprintln!(
            "note: the file's `settings` differ from {env}'s; settings are not objects, and a change does not edit them"
        );
    }
}

/// The environment's config and its version.
async fn current(api: &Api, env: Environment) -> Result<(Config, u64)> {
    let v: ConfigResponse = api.get(&format!("/v1/envs/{env}/config")).await?;
    Ok((v.config, v.version))
}

pub(crate) fn diff_cmd(a: DiffArgs) -> Result<()> {
    let env = parse_env(&a.env)?;
    let desired = crate::load(&a.fleet)?;
    let json = a.client.json;
    client(&a.client, |api| async move {
        let (cur, version) = current(&api, env).await?;
        settings_note(&cur, &desired, env);
        let d = diff(&cur, &desired);
        if json {
            json_out(
                &json!({ "env": env, "base_version": version, "diff": d.iter().map(ObjectDiff::to_json).collect::<Vec<_>>() }),
            )
        } else {
            print_diff(env, version, &d)
        }
    })
}

pub(crate) fn apply_cmd(a: ApplyArgs) -> Result<()> {
    let env = parse_env(&a.env)?;
    let desired = crate::load(&a.fleet)?;
    crate::check(&a.fleet, &desired)?;
    let json = a.client.json;
    let declared = DeclaredImpact {
        changed_percent: 0.0,
        denies_all: a.fleet.declare_deny_all.clone(),
    };
    let reason = a.reason;
    client(&a.client, |api| async move {
        let (cur, version) = current(&api, env).await?;
        settings_note(&cur, &desired, env);
        let d = diff(&cur, &desired);
        if !json {
            print_diff(env, version, &d)?;
        }
        if d.is_empty() {
            if json {
                json_out(
                    &json!({ "env": env, "base_version": version, "diff": [], "change": null }),
                )?;
            }
            return Ok(());
        }
        let edits = to_edits(&d);
        let body = SubmitRequest {
            reason,
            declared_impact: declared,
            edits,
            base_version: version,
        };
        let view: Value = api.post(&format!("/v1/envs/{env}/changes"), &body).await?;
        if json {
            json_out(&json!({
                "env": env,
                "base_version": version,
                "diff": d.iter().map(ObjectDiff::to_json).collect::<Vec<_>>(),
                "change": view,
            }))
        } else {
            print_change(&view)
        }
    })
}

pub(crate) fn flag_cmd(a: FlagArgs) -> Result<()> {
    let json = a.client.json;
    client(&a.client, |api| async move {
        match a.cmd {
            FlagCmd::List { env } => {
                let env = parse_env(&env)?;
                let v: Value = api.get(&format!("/v1/envs/{env}/flags")).await?;
                if json {
                    return json_out(&v);
                }
                let flags = v["flags"].as_array().cloned().unwrap_or_default();
                out(&format!(
                    "{} flag(s) in {env} (version {})",
                    flags.len(),
                    v["version"]
                ))?;
                for f in &flags {
                    out(&format!(
                        "  {}  {}  default={}",
                        f["name"].as_str().unwrap_or("?"),
                        f["type"].as_str().unwrap_or("?"),
                        f.get("default").map(Value::to_string).unwrap_or_default()
                    ))?;
                }
                Ok(())
            }
            FlagCmd::Get { name, env } => {
                let env = parse_env(&env)?;
                let v: Value = api
                    .get(&format!("/v1/envs/{env}/flags/{}", enc(&name)))
                    .await?;
                if json {
                    return json_out(&v);
                }
                out(&format!("flag {name} in {env}"))?;
                if let Some(o) = v.as_object() {
                    for (k, val) in o {
                        if k != "name" {
                            out(&format!("  {k}: {val}"))?;
                        }
                    }
                }
                Ok(())
            }
        }
    })
}

/// A change file: the submit body, the environment optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeFile {
    #[serde(default)]
    environment: Option<Environment>,
    /// Ignored: the author is whoever holds the token.
    #[serde(default)]
    #[allow(dead_code)]
    author: Option<String>,
    reason: String,
    #[serde(default)]
    declared_impact: DeclaredImpact,
    edits: Vec<Edit>,
    #[serde(default)]
    base_version: Option<u64>,
}

pub(crate) fn change_cmd(a: ChangeArgs) -> Result<()> {
    let json = a.client.json;
    // Read a change file before any network call.
    let file = match &a.cmd {
        ChangeCmd::Submit { file, env } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let parsed: Result<ChangeFile, _> = if text.trim_start().starts_with('{') {
                from_json(&text)
            } else {
                from_yaml(&text)
            };
            let cf = parsed.map_err(|e| {
                eprintln!("{}: {e}", file.display());
                anyhow::Error::from(Reported)
            })?;
            let env = match (env.as_deref().map(parse_env).transpose()?, cf.environment) {
                (Some(a), Some(b)) if a != b => {
                    anyhow::bail!("--env {a} does not match the file's environment {b}")
                }
                (Some(e), _) | (None, Some(e)) => e,
                (None, None) => anyhow::bail!(
                    "{}: name the environment with --env or `environment:`",
                    file.display()
                ),
            };
            Some((env, cf))
        }
        _ => None,
    };
    client(&a.client, |api| async move {
        let (view, show) = match a.cmd {
            ChangeCmd::Submit { .. } => {
                let Some((env, cf)) = file else {
                    unreachable!("read above")
                };
                let base = match cf.base_version {
                    Some(v) => v,
                    None => current(&api, env).await?.1,
                };
                let body = SubmitRequest {
                    reason: cf.reason,
                    declared_impact: cf.declared_impact,
                    edits: cf.edits,
                    base_version: base,
                };
                (
                    api.post(&format!("/v1/envs/{env}/changes"), &body).await?,
                    true,
                )
            }
            ChangeCmd::Show { id } => (api.get(&format!("/v1/changes/{}", enc(&id))).await?, true),
            ChangeCmd::Approve { id } => (
                api.post(
                    &format!("/v1/changes/{}/approve", enc(&id)),
                    &EmptyRequest {},
                )
                .await?,
                true,
            ),
            ChangeCmd::Reject { id, reason } => (
                api.post(
                    &format!("/v1/changes/{}/reject", enc(&id)),
                    &json!({ "reason": reason }),
                )
                .await?,
                true,
            ),
            ChangeCmd::Apply { id } => {
                let v: ApplyResponse = api
                    .post(&format!("/v1/changes/{}/apply", enc(&id)), &EmptyRequest {})
                    .await?;
                if !json {
                    print_change(&serde_json::to_value(&v.change)?)?;
                    out(&format!(
                        "  snapshot: version {} hash sha256:{}",
                        v.snapshot.version, v.snapshot.hash
                    ))?;
                    if let Some(r) = &v.rollout_id {
                        out(&format!(
                            "  rolling out: {r}   follow it with: rampart rollout watch {r}"
                        ))?;
                    }
                }
                (serde_json::to_value(&v)?, false)
            }
            ChangeCmd::List { env, limit } => {
                let env = parse_env(&env)?;
                let v: ChangeList = api
                    .get(&format!("/v1/envs/{env}/changes?limit={limit}"))
                    .await?;
                if !json {
                    out(&format!("{} change(s) in {env}", v.changes.len()))?;
                    for c in &v.changes {
                        out(&format!(
                            "  {}  {:<17} {:<8} {}  {}",
                            c.id,
                            c.status.as_str(),
                            c.risk.as_str(),
                            c.author,
                            c.reason
                        ))?;
                    }
                }
                (serde_json::to_value(&v)?, false)
            }
        };
        if json {
            json_out(&view)
        } else if show {
            print_change(&view)
        } else {
            Ok(())
        }
    })
}

pub(crate) fn audit_cmd(a: AuditArgs) -> Result<()> {
    let json = a.client.json;
    client(&a.client, |api| async move {
        match a.cmd {
            AuditCmd::Verify => {
                let v: AuditReport = api.get("/v1/audit/verify").await?;
                if json {
                    json_out(&v)?;
                } else if v.ok {
                    out(&format!(
                        "audit log OK: {} entries, head seq {} hash {}",
                        v.entries, v.head_seq, v.head_hash
                    ))?;
                }
                if v.ok {
                    Ok(())
                } else {
                    eprintln!(
                        "error: the audit log is broken at seq {}: {}",
                        v.bad_seq
                            .map_or_else(|| "null".to_owned(), |s| s.to_string()),
                        v.error.as_deref().unwrap_or("verification failed")
                    );
                    Err(Reported.into())
                }
            }
        }
    })
}

pub(crate) fn fleet_cmd(a: FleetViewArgs) -> Result<()> {
    let json = a.client.json;
    let env = parse_env(&a.env)?;
    client(&a.client, |api| async move {
        let path = format!("/v1/fleet?env={env}");
        let v: Value = match api.get(&path).await {
            Ok(v) => v,
            Err(e) => match e.downcast_ref::<ApiFailure>() {
                Some(f) if f.status == 404 && f.message() == "no such endpoint" => {
                    eprintln!(
                        "error: the fleet view is not available on this control plane (GET /v1/fleet: 404)"
                    );
                    return Err(Reported.into());
                }
                _ => return Err(e),
            },
        };
        if json {
            return json_out(&v);
        }
        let list = v
            .get("gateways")
            .and_then(Value::as_array)
            .or_else(|| v.as_array())
            .cloned();
        let Some(list) = list else {
            return json_out(&v);
        };
        out(&format!("{} gateway(s) in {env}", list.len()))?;
        for g in &list {
            let s = |k: &str| match &g[k] {
                Value::Null => "-".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out(&format!(
                "  {}  env={} cell={} version={} hash={} last_seen={} last_nack={}",
                s("id"),
                s("env"),
                s("cell"),
                s("version"),
                s("hash"),
                s("last_seen_ms"),
                s("last_nack")
            ))?;
        }
        Ok(())
    })
}

fn print_change(v: &Value) -> Result<()> {
    out(&format!(
        "change {}: {} (risk {}, {} by {})",
        v["id"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?"),
        v["risk"].as_str().unwrap_or("?"),
        v["env"].as_str().unwrap_or("?"),
        v["author"].as_str().unwrap_or("?")
    ))?;
    if let Some(a) = v["approvals"].as_array()
        && !a.is_empty()
    {
        let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
        out(&format!("  approvals: {}", names.join(", ")))?;
    }
    if let Some(missing) = v["verdict"]["missing"].as_array()
        && !missing.is_empty()
    {
        for m in missing {
            let text = match m {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .iter()
                    .map(|(k, v)| match v {
                        Value::Object(inner) => {
                            let parts: Vec<String> =
                                inner.iter().map(|(ik, iv)| format!("{ik} {iv}")).collect();
                            format!("{k} ({})", parts.join(", "))
                        }
                        other => format!("{k}: {other}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            out(&format!("  needs: {text}"))?;
        }
    }
    for e in v["validation"].as_array().into_iter().flatten() {
        out(&format!(
            "  {}: {}",
            e["path"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        ))?;
    }
    for line in crate::rollout_cmds::impact_lines(&v["impact"]) {
        out(&line)?;
    }
    if let Some(id) = v["rollout_id"].as_str() {
        out(&format!("  rollout: {id}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The object-level diff.

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Op {
    Add,
    Change,
    Remove,
}

/// One object that differs between the current config and the desired one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectDiff {
    pub(crate) kind: ObjectKind,
    pub(crate) name: String,
    pub(crate) op: Op,
    /// For a change: the top-level fields that differ, sorted.
    pub(crate) fields: Vec<String>,
    /// The desired object (added or changed); `None` when removed.
    pub(crate) object: Option<Object>,
}

impl ObjectDiff {
    fn to_json(&self) -> Value {
        json!({
            "kind": kind_name(self.kind),
            "name": self.name,
            "op": match self.op { Op::Add => "add", Op::Change => "change", Op::Remove => "remove" },
            "fields": self.fields,
        })
    }
}

pub(crate) fn kind_name(k: ObjectKind) -> &'static str {
    match k {
        ObjectKind::Product => "product",
        ObjectKind::Upstream => "upstream",
        ObjectKind::Policy => "policy",
        ObjectKind::Route => "route",
        ObjectKind::Flag => "flag",
    }
}

fn kind_rank(k: ObjectKind) -> u8 {
    match k {
        ObjectKind::Product => 0,
        ObjectKind::Upstream => 1,
        ObjectKind::Policy => 2,
        ObjectKind::Route => 3,
        ObjectKind::Flag => 4,
    }
}

/// Every object of a config, by (kind, name).
fn objects(cfg: &Config) -> BTreeMap<(u8, String), (ObjectKind, Object)> {
    let mut m = BTreeMap::new();
    let mut put = |kind: ObjectKind, name: &str, o: Object| {
        m.insert((kind_rank(kind), name.to_owned()), (kind, o));
    };
    for p in &cfg.products {
        put(ObjectKind::Product, &p.name, Object::Product(p.clone()));
    }
    for u in &cfg.upstreams {
        put(ObjectKind::Upstream, &u.name, Object::Upstream(u.clone()));
    }
    for p in &cfg.policies {
        put(ObjectKind::Policy, &p.id, Object::Policy(p.clone()));
    }
    for r in &cfg.routes {
        put(ObjectKind::Route, &r.id, Object::Route(r.clone()));
    }
    for f in &cfg.flags {
        put(ObjectKind::Flag, &f.name, Object::Flag(f.clone()));
    }
    m
}

/// The object's fields as JSON.
fn fields(o: &Object) -> serde_json::Map<String, Value> {
    let v = match o {
        Object::Product(x) => serde_json::to_value(x),
        Object::Upstream(x) => serde_json::to_value(x),
        Object::Policy(x) => serde_json::to_value(x),
        Object::Route(x) => serde_json::to_value(x),
        Object::Flag(x) => serde_json::to_value(x),
    };
    match v {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// The objects that `desired` adds, changes or removes against `current`, by kind then name.
/// Environment-wide settings are not objects and are not compared.
pub(crate) fn diff(current: &Config, desired: &Config) -> Vec<ObjectDiff> {
    let cur = objects(current);
    let want = objects(desired);
    let mut d = Vec::new();
    for (key, (kind, obj)) in &want {
        match cur.get(key) {
            None => d.push(ObjectDiff {
                kind: *kind,
                name: key.1.clone(),
                op: Op::Add,
                fields: Vec::new(),
                object: Some(obj.clone()),
            }),
            Some((_, old)) if old != obj => {
                let (a, b) = (fields(old), fields(obj));
                let mut changed: Vec<String> = a
                    .keys()
                    .chain(b.keys())
                    .filter(|k| a.get(*k) != b.get(*k))
                    .cloned()
                    .collect();
                changed.sort();
                changed.dedup();
                d.push(ObjectDiff {
                    kind: *kind,
                    name: key.1.clone(),
                    op: Op::Change,
                    fields: changed,
                    object: Some(obj.clone()),
                });
            }
            Some(_) => {}
        }
    }
    for (key, (kind, _)) in &cur {
        if !want.contains_key(key) {
            d.push(ObjectDiff {
                kind: *kind,
                name: key.1.clone(),
                op: Op::Remove,
                fields: Vec::new(),
                object: None,
            });
        }
    }
    d.sort_by(|a, b| (kind_rank(a.kind), &a.name, a.op).cmp(&(kind_rank(b.kind), &b.name, b.op)));
    d
}

/// The edits that make the diff: upserts of added and changed objects, deletes of removed ones.
pub(crate) fn to_edits(d: &[ObjectDiff]) -> Vec<Edit> {
    d.iter()
        .map(|o| match &o.object {
            Some(obj) => Edit::Upsert(obj.clone()),
            None => Edit::Delete {
                kind: o.kind,
                name: o.name.clone(),
            },
        })
        .collect()
}

fn print_diff(env: Environment, version: u64, d: &[ObjectDiff]) -> Result<()> {
    if d.is_empty() {
        return out(&format!(
            "no changes: {env} (version {version}) matches the file"
        ));
    }
    out(&format!("{env} at version {version}:"))?;
    for o in d {
        let (sign, verb) = match o.op {
            Op::Add => ('+', "add"),
            Op::Change => ('~', "change"),
            Op::Remove => ('-', "remove"),
        };
        let detail = if o.fields.is_empty() {
            String::new()
        } else {
            format!(" ({})", o.fields.join(", "))
        };
        out(&format!(
            "  {sign} {} {}: {verb}{detail}",
            kind_name(o.kind),
            o.name
        ))?;
    }
    let count = |op: Op| d.iter().filter(|o| o.op == op).count();
    out(&format!(
        "plan: {} to add, {} to change, {} to remove",
        count(Op::Add),
        count(Op::Change),
        count(Op::Remove)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Config {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/fleet.yaml"
        ))
        .expect("the example fleet");
        from_yaml(&text).expect("the example fleet parses")
    }

    #[test]
    fn same_config_has_no_diff() {
        let c = fleet();
        assert!(diff(&c, &c).is_empty());
    }

    #[test]
    fn everything_is_added_to_an_empty_env() {
        let c = fleet();
        let empty = Config {
            products: vec![],
            upstreams: vec![],
            policies: vec![],
            routes: vec![],
            flags: vec![],
            ..c.clone()
        };
        let d = diff(&empty, &c);
        let total = c.products.len()
            + c.upstreams.len()
            + c.policies.len()
            + c.routes.len()
            + c.flags.len();
        assert_eq!(d.len(), total);
        assert!(d.iter().all(|o| o.op == Op::Add && o.object.is_some()));
        // Reversed, every object is removed, and the edits are deletes.
        let back = diff(&c, &empty);
        assert!(back.iter().all(|o| o.op == Op::Remove));
        assert!(
            to_edits(&back)
                .iter()
                .all(|e| matches!(e, Edit::Delete { .. }))
        );
    }

    #[test]
    fn a_changed_object_names_its_changed_fields() {
        let c = fleet();
        let mut edited = c.clone();
        edited.upstreams[0].endpoints.push("127.0.0.1:1".into());
        let removed = edited.products.pop().expect("a product");
        let d = diff(&c, &edited);
        assert_eq!(d.len(), 2, "{d:?}");
        let ch = d.iter().find(|o| o.op == Op::Change).expect("a change");
        assert_eq!(ch.kind, ObjectKind::Upstream);
        assert_eq!(ch.name, c.upstreams[0].name);
        assert_eq!(ch.fields, vec!["endpoints".to_owned()]);
        let rm = d.iter().find(|o| o.op == Op::Remove).expect("a removal");
        assert_eq!(rm.kind, ObjectKind::Product);
        assert_eq!(rm.name, removed.name);
        let edits = to_edits(&d);
        assert!(matches!(&edits[0], Edit::Upsert(_)) || matches!(&edits[1], Edit::Upsert(_)));
    }
}
