//! `rampart diff`: the objects a fleet file would add, change or remove in an environment, like
//! `terraform plan`; and that object-level diff, which `rampart apply` turns into a change.
//! The environment's settings are an object too (present when they differ from the defaults).
//! When the edits move routes in the effective precedence order
//! ([`rampart_eval::precedence`]), the diff shows those routes' order before and after.

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
use rampart_eval::precedence;

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

/// What `--json` prints: the environment, the version compared, the diff, the change in
/// effective route order if any, and for `apply` the change submitted (null when there was
/// nothing to change).
#[derive(Debug, Serialize)]
pub(crate) struct Plan<'a> {
    pub(crate) env: Environment,
    pub(crate) base_version: u64,
    pub(crate) diff: &'a [ObjectDiff],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) order: Option<&'a OrderChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) change: Option<Option<&'a ChangeView>>,
}

pub(crate) fn run(a: DiffArgs) -> Result<()> {
    let env = parse_env(&a.env)?;
    let desired = load(&a.fleet)?;
    let json = a.client.json;
    client(&a.client, |api| async move {
        let c = compare(&api, env, &desired).await?;
        let plan = Plan {
            env,
            base_version: c.version,
            diff: &c.diff,
            order: c.order.as_ref(),
            change: None,
        };
        answer(json, &plan, |_| print_diff(env, &c))
    })
}

/// An environment compared with a fleet file.
#[derive(Debug)]
pub(crate) struct Compared {
    /// The environment's version: what a change is written against.
    pub(crate) version: u64,
    pub(crate) diff: Vec<ObjectDiff>,
    pub(crate) order: Option<OrderChange>,
}

/// The environment's version, and the diff of `desired` against its config.
pub(crate) async fn compare(api: &Api, env: Environment, desired: &Config) -> Result<Compared> {
    let current = config(api, env).await?;
    Ok(Compared {
        version: current.version,
        diff: diff(&current.config, desired),
        order: order_change(&current.config, desired),
    })
}

/// The environment's version: what a change is written against.
pub(crate) async fn version(api: &Api, env: Environment) -> Result<u64> {
    Ok(config(api, env).await?.version)
}

async fn config(api: &Api, env: Environment) -> Result<ConfigResponse> {
    api.get(&format!("/v1/envs/{env}/config")).await
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

/// Kinds in the order of their declaration: settings, products, upstreams, policies, routes,
/// flags.
fn kind_rank(k: ObjectKind) -> usize {
    ObjectKind::VARIANTS
        .iter()
        .position(|v| *v == k)
        .unwrap_or(usize::MAX)
}

/// Every object of a config (the settings among them when not the defaults), by (kind, name).
fn objects(cfg: &Config) -> BTreeMap<(usize, String), (ObjectKind, Object)> {
    cfg.objects()
        .map(|o| {
            let (kind, name) = o.key();
            ((kind_rank(kind), name.to_owned()), (kind, o))
        })
        .collect()
}

/// The object's fields as JSON.
fn fields(o: &Object) -> serde_json::Map<String, Value> {
    let v = match o {
        Object::Settings(x) => serde_json::to_value(x),
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
/// Settings back at their defaults are a removal of the settings object.
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

/// Routes of both configurations that the edits move in the effective precedence order: the
/// shortest run of the order (of the routes in both) that differs, before and after. Added and
/// removed routes are left out: the diff lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct OrderChange {
    pub(crate) before: Vec<String>,
    pub(crate) after: Vec<String>,
}

/// How the effective order of the routes present in both configurations changes, if it does.
pub(crate) fn order_change(current: &Config, desired: &Config) -> Option<OrderChange> {
    let in_both = |of: &Config, other: &Config| -> Vec<String> {
        precedence::ordered_ids(&of.routes)
            .into_iter()
            .filter(|id| other.routes.iter().any(|r| r.id == *id))
            .map(str::to_owned)
            .collect()
    };
    let before = in_both(current, desired);
    let after = in_both(desired, current);
    let first = before.iter().zip(&after).position(|(a, b)| a != b)?;
    let last = before.len()
        - before
            .iter()
            .rev()
            .zip(after.iter().rev())
            .position(|(a, b)| a != b)?;
    Some(OrderChange {
        before: before[first..last].to_vec(),
        after: after[first..last].to_vec(),
    })
}

pub(crate) fn print_diff(env: Environment, c: &Compared) -> Result<()> {
    let (version, d) = (c.version, &c.diff[..]);
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
    if let Some(o) = &c.order {
        out("  effective route order (highest precedence first) changes:")?;
        out(&format!("    before: {}", o.before.join(", ")))?;
        out(&format!("    after:  {}", o.after.join(", ")))?;
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

    #[test]
    fn settings_are_an_object_present_when_not_the_defaults() {
        let mut c = fleet();
        c.settings = Default::default();
        let mut edited = c.clone();
        edited.settings.tenant_header = "x-org".into();
        let d = diff(&c, &edited);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].kind, d[0].op), (ObjectKind::Settings, Op::Add));
        assert_eq!(d[0].name, rampart_model::change::SETTINGS_NAME);
        let mut again = edited.clone();
        again.settings.tenant_header = "x-team".into();
        let d = diff(&edited, &again);
        assert_eq!(
            (d[0].op, &d[0].fields[..]),
            (Op::Change, &["tenant_header".to_owned()][..])
        );
        // Back to the defaults: the object goes, and the environment reads as the defaults.
        let d = diff(&edited, &c);
        assert_eq!((d[0].kind, d[0].op), (ObjectKind::Settings, Op::Remove));
        assert!(matches!(
            &to_edits(&d)[0],
            Edit::Delete {
                kind: ObjectKind::Settings,
                ..
            }
        ));
    }

    #[test]
    fn an_edit_that_moves_a_route_in_precedence_shows_the_order() {
        let c = fleet();
        assert_eq!(order_change(&c, &c), None);
        // Reordering the file changes nothing: precedence does not read file order.
        let mut shuffled = c.clone();
        shuffled.routes.reverse();
        assert!(diff(&c, &shuffled).is_empty());
        assert_eq!(order_change(&c, &shuffled), None);
        // Raising the last route's priority moves it first.
        let before = precedence::ordered_ids(&c.routes)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let last = before.last().expect("routes").clone();
        let mut raised = c.clone();
        let r = raised
            .routes
            .iter_mut()
            .find(|r| r.id == last)
            .expect("route");
        r.priority = 100;
        let d = diff(&c, &raised);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].fields, vec!["priority".to_owned()]);
        let o = order_change(&c, &raised).expect("an order change");
        assert_eq!(o.before, before);
        let mut after = vec![last.clone()];
        after.extend(before[..before.len() - 1].iter().cloned());
        assert_eq!(o.after, after);
    }
}
