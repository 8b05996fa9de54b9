//! `rampart diff`: the objects a fleet file would add, change or remove in an environment, like
//! `terraform plan`; and that object-level diff, which `rampart apply` turns into a change.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Args;
use rampart_api::{ChangeView, ConfigResponse};
use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::{Config, EnumName, Environment};
use serde::Serialize;
use serde_json::Value;
use strum::VariantArray;

use super::ClientArgs;
use crate::client::{Api, client, parse_env};
use crate::fleet_file::{FleetArgs, load};
use crate::output::{answer, out};

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

/// What `--json` prints: the environment, the version compared, the diff, and for `apply` the
/// change submitted (null when there was nothing to change).
#[derive(Debug, Serialize)]
pub(crate) struct Plan<'a> {
    pub(crate) env: Environment,
    pub(crate) base_version: u64,
    pub(crate) diff: &'a [ObjectDiff],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) change: Option<Option<&'a ChangeView>>,
}

pub(crate) fn run(a: DiffArgs) -> Result<()> {
    let env = parse_env(&a.env)?;
    let desired = load(&a.fleet)?;
    let json = a.client.json;
    client(&a.client, |api| async move {
        let (d, version) = compare(&api, env, &desired).await?;
        let plan = Plan {
            env,
            base_version: version,
            diff: &d,
            change: None,
        };
        answer(json, &plan, |p| print_diff(env, version, p.diff))
    })
}

/// The environment's version, and the diff of `desired` against its config; a note on stderr
/// when the settings differ.
pub(crate) async fn compare(
    api: &Api,
    env: Environment,
    desired: &Config,
) -> Result<(Vec<ObjectDiff>, u64)> {
    let current = config(api, env).await?;
    settings_note(&current.config, desired, env);
    Ok((diff(&current.config, desired), current.version))
}

/// The environment's version: what a change is written against.
pub(crate) async fn version(api: &Api, env: Environment) -> Result<u64> {
    Ok(config(api, env).await?.version)
}

async fn config(api: &Api, env: Environment) -> Result<ConfigResponse> {
    api.get(&format!("/v1/envs/{env}/config")).await
}

/// Environment-wide settings are not objects: no change edits them, so say when they differ.
fn settings_note(current: &Config, desired: &Config, env: Environment) {
    if current.settings != desired.settings {
        eprintln!(
            "note: the file's `settings` differ from {env}'s; settings are not objects, and a change does not edit them"
        );
    }
}

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    Add,
    Change,
    Remove,
}

/// One object that differs between the current config and the desired one; `--json` prints
/// its kind, name, op and fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ObjectDiff {
    pub(crate) kind: ObjectKind,
    pub(crate) name: String,
    pub(crate) op: Op,
    /// For a change: the top-level fields that differ, sorted.
    pub(crate) fields: Vec<String>,
    /// The desired object (added or changed); `None` when removed.
    #[serde(skip)]
    pub(crate) object: Option<Object>,
}

/// Kinds in the order of their declaration: products, upstreams, policies, routes, flags.
fn kind_rank(k: ObjectKind) -> usize {
    ObjectKind::VARIANTS
        .iter()
        .position(|v| *v == k)
        .unwrap_or(usize::MAX)
}

/// Every object of a config, by (kind, name).
fn objects(cfg: &Config) -> BTreeMap<(usize, String), (ObjectKind, Object)> {
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

pub(crate) fn print_diff(env: Environment, version: u64, d: &[ObjectDiff]) -> Result<()> {
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
            o.kind.as_str(),
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
    use rampart_model::load::from_yaml;

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
