//! A change's risk, derived from what it touches: never declared by its author.
//!
//! # The mapping
//!
//! [`change_risk`] is the maximum over the change's edits (a change with no edits is low):
//!
//! | edit | risk |
//! |---|---|
//! | upsert a flag | the higher of its new `risk` and its current `risk` (lowering a flag's risk is governed by the old level) |
//! | delete a flag | the higher of its current `risk` and medium |
//! | upsert a policy | medium, or more: see bindings below |
//! | delete a policy | medium, or more: see bindings below |
//! | upsert or delete a route | medium, or more: see bindings below |
//! | upsert or delete an upstream | medium |
//! | upsert or delete the settings | high: they apply to every request of the environment (the tenant header, and what other settings decide: which proxies are trusted, how paths are normalised, connection limits), and deleting them restores the defaults |
//! | upsert a product | low (a name and a description: no effect on traffic) |
//! | delete a product | medium (any deletion is at least medium) |
//!
//! **Bindings.** A policy field bound to a flag is controlled by that flag, so whoever puts a
//! flag's control onto traffic, or takes it off, needs the care the flag needs. A policy edit
//! inherits the risk of every flag whose binding it adds, removes or moves (compared by field
//! path; a new policy adds all of its bindings and a deleted one removes them), and a route
//! edit inherits the risk of every flag bound in a policy it attaches or detaches. Editing a
//! policy around an unchanged binding stays medium. A flag's risk here is the highest of its
//! current value and its value in the change.

use std::collections::BTreeSet;

use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::config::{Policy, Route};
use rampart_model::{Change, Config, Risk};
use serde::Serialize;
use serde_json::Value;

/// The risk of one edit of a change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditRisk {
    pub kind: ObjectKind,
    pub name: String,
    pub risk: Risk,
    /// A short human reason, such as "flag risk" or "binds flag `x`".
    pub reason: String,
}

/// The risk of a change: the highest of [`edit_risks`], or low for a change with no edits.
pub fn change_risk(change: &Change, current: &Config) -> Risk {
    edit_risks(change, current)
        .into_iter()
        .map(|e| e.risk)
        .max()
        .unwrap_or(Risk::Low)
}

/// The risk of each edit of `change` against the `current` config, with its reason: the
/// mapping in the module docs.
pub fn edit_risks(change: &Change, current: &Config) -> Vec<EditRisk> {
    let ctx = Ctx { change, current };
    change.edits.iter().map(|e| ctx.edit_risk(e)).collect()
}

struct Ctx<'a> {
    change: &'a Change,
    current: &'a Config,
}

impl Ctx<'_> {
    fn edit_risk(&self, edit: &Edit) -> EditRisk {
        let (kind, name) = match edit {
            Edit::Upsert(o) => object_key(o),
            Edit::Delete { kind, name } => (*kind, name.as_str()),
        };
        let (risk, reason) = match edit {
            Edit::Upsert(Object::Flag(f)) => {
                let old = self.current.flags.iter().find(|c| c.name == f.name);
                match old {
                    Some(old) if old.risk > f.risk => (old.risk, "flag risk (current)".to_owned()),
                    _ => (f.risk, "flag risk".to_owned()),
                }
            }
            Edit::Upsert(Object::Settings(_)) => {
                (Risk::High, "environment settings: every request".to_owned())
            }
            Edit::Upsert(Object::Product(_)) => (Risk::Low, "product metadata".to_owned()),
            Edit::Upsert(Object::Upstream(_)) => (Risk::Medium, "upstream".to_owned()),
            Edit::Upsert(Object::Policy(p)) => {
                let old = self.current.policies.iter().find(|c| c.id == p.id);
                let moved = symmetric_difference(old.map(bindings), Some(bindings(p)));
                self.with_flags(Risk::Medium, "policy", flag_names(&moved))
            }
            Edit::Upsert(Object::Route(r)) => {
                let old = self.current.routes.iter().find(|c| c.id == r.id);
                let moved = attached_difference(old, Some(r));
                self.with_flags(Risk::Medium, "route", self.flags_of_policies(&moved))
            }
            Edit::Delete { kind, name } => match kind {
                ObjectKind::Settings => (
                    Risk::High,
                    "environment settings reset to defaults: every request".to_owned(),
                ),
                ObjectKind::Flag => match self.current.flags.iter().find(|c| &c.name == name) {
                    Some(old) if old.risk > Risk::Medium => {
                        (old.risk, "deleting a flag (flag risk)".to_owned())
                    }
                    _ => (Risk::Medium, "deletion".to_owned()),
                },
                ObjectKind::Policy => {
                    let old = self.current.policies.iter().find(|c| &c.id == name);
                    let moved = symmetric_difference(old.map(bindings), None);
                    self.with_flags(Risk::Medium, "deletion", flag_names(&moved))
                }
                ObjectKind::Route => {
                    let old = self.current.routes.iter().find(|c| &c.id == name);
                    let moved = attached_difference(old, None);
                    self.with_flags(Risk::Medium, "deletion", self.flags_of_policies(&moved))
                }
                ObjectKind::Product | ObjectKind::Upstream => (Risk::Medium, "deletion".to_owned()),
            },
        };
        EditRisk {
            kind,
            name: name.to_owned(),
            risk,
            reason,
        }
    }

    /// `base`, raised to the risk of any of `flags`.
    fn with_flags(&self, base: Risk, why: &str, flags: BTreeSet<String>) -> (Risk, String) {
        let mut risk = base;
        let mut reason = why.to_owned();
        for flag in flags {
            if let Some(r) = self.flag_risk(&flag)
                && r > risk
            {
                risk = r;
                reason = format!("{why}: binds or unbinds flag `{flag}`");
            }
        }
        (risk, reason)
    }

    /// The highest risk of the flag `name`, in the current config and in the change.
    fn flag_risk(&self, name: &str) -> Option<Risk> {
        let current = self.current.flags.iter().filter(|f| f.name == name);
        let changed = self.change.edits.iter().filter_map(|e| match e {
            Edit::Upsert(Object::Flag(f)) if f.name == name => Some(f),
            _ => None,
        });
        current.chain(changed).map(|f| f.risk).max()
    }

    /// Every flag bound by any version (current or in the change) of the policies `ids`.
    fn flags_of_policies(&self, ids: &BTreeSet<String>) -> BTreeSet<String> {
        let current = self.current.policies.iter();
        let changed = self.change.edits.iter().filter_map(|e| match e {
            Edit::Upsert(Object::Policy(p)) => Some(p),
            _ => None,
        });
        current
            .chain(changed)
            .filter(|p| ids.contains(&p.id))
            .flat_map(|p| bindings(p).into_iter().map(|(_, flag)| flag))
            .collect()
    }
}

fn object_key(o: &Object) -> (ObjectKind, &str) {
    o.key()
}

/// The flag bindings of a policy, as (field path, flag name). Found in the policy's JSON form,
/// where a binding is written `{"flag": "<name>"}`, so a field added to the model later is
/// covered without touching this code.
fn bindings(policy: &Policy) -> BTreeSet<(String, String)> {
    fn walk(v: &Value, path: &mut String, out: &mut BTreeSet<(String, String)>) {
        match v {
            Value::Object(map) => {
                if map.len() == 1
                    && let Some(Value::String(flag)) = map.get("flag")
                {
                    out.insert((path.clone(), flag.clone()));
                    return;
                }
                for (k, v) in map {
                    let len = path.len();
                    path.push('/');
                    path.push_str(k);
                    walk(v, path, out);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&i.to_string());
                    walk(v, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    // A policy that does not serialize has no bindings to find; it cannot happen with the
    // model's types, and validation rejects the change anyway.
    if let Ok(v) = serde_json::to_value(policy) {
        walk(&v, &mut String::new(), &mut out);
    }
    out
}

fn symmetric_difference(
    old: Option<BTreeSet<(String, String)>>,
    new: Option<BTreeSet<(String, String)>>,
) -> BTreeSet<(String, String)> {
    let old = old.unwrap_or_default();
    let new = new.unwrap_or_default();
    old.symmetric_difference(&new).cloned().collect()
}

fn flag_names(bindings: &BTreeSet<(String, String)>) -> BTreeSet<String> {
    bindings.iter().map(|(_, flag)| flag.clone()).collect()
}

/// The policies attached to or detached from a route.
fn attached_difference(old: Option<&Route>, new: Option<&Route>) -> BTreeSet<String> {
    let ids = |r: Option<&Route>| -> BTreeSet<String> {
        r.map(|r| r.policies.iter().cloned().collect())
            .unwrap_or_default()
    };
    ids(old).symmetric_difference(&ids(new)).cloned().collect()
}
