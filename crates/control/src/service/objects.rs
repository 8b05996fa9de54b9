//! An environment's objects as a map, and a config with a change's edits applied.

use std::collections::BTreeMap;

use rampart_api::FieldError;
use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::config::Config;
use rampart_model::{EnumName, parse_name};

use super::{Result, ServiceError};

pub(super) type ObjectMap = BTreeMap<(&'static str, String), Object>;

pub(super) fn objects_of(config: &Config) -> ObjectMap {
    config
        .objects()
        .map(|o| {
            let (kind, name) = o.key();
            ((kind.as_str(), name.to_owned()), o)
        })
        .collect()
}

pub(super) fn edit_key(edit: &Edit) -> (&'static str, String) {
    match edit {
        Edit::Upsert(o) => {
            let (kind, name) = o.key();
            (kind.as_str(), name.to_owned())
        }
        Edit::Delete { kind, name } => (kind.as_str(), name.clone()),
    }
}

/// The current config with `edits` applied, or the edits that cannot apply (with paths).
pub fn candidate(current: &Config, edits: &[Edit]) -> Result<Config, Vec<FieldError>> {
    let mut errors = Vec::new();
    if edits.is_empty() {
        errors.push(FieldError {
            path: "edits".to_owned(),
            message: "a change needs at least one edit".to_owned(),
        });
    }
    let mut objects = objects_of(current);
    let mut seen = BTreeMap::new();
    for (i, edit) in edits.iter().enumerate() {
        let key = edit_key(edit);
        if let Some(first) = seen.insert(key.clone(), i) {
            errors.push(FieldError {
                path: format!("edits[{i}]"),
                message: format!(
                    "{} `{}` is already edited by edits[{first}]: one edit per object",
                    key.0, key.1
                ),
            });
            continue;
        }
        match edit {
            Edit::Upsert(o) => {
                objects.insert(key, o.clone());
            }
            Edit::Delete { .. } => {
                if objects.remove(&key).is_none() {
                    errors.push(FieldError {
                        path: format!("edits[{i}]"),
                        message: format!("cannot delete {} `{}`: it does not exist", key.0, key.1),
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        // A settings object among them sets the settings; without one (never written, or
        // deleted by this change) they are the defaults.
        Ok(Config::from_objects(
            current.environment,
            objects.into_values(),
        ))
    } else {
        Err(errors)
    }
}

pub(super) fn kind_from_str(kind: &str) -> Result<ObjectKind> {
    parse_name::<ObjectKind>("object kind", kind).map_err(|e| ServiceError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use rampart_model::config::{Environment, Settings};

    use super::*;

    #[test]
    fn settings_are_set_by_their_object_and_reset_by_its_deletion() {
        let current = Config::from_objects(Environment::Dev, []);
        assert_eq!(current.settings, Settings::default());
        let custom: Settings =
            serde_json::from_value(serde_json::json!({ "tenant_header": "x-org" })).unwrap();
        let set = candidate(&current, &[Edit::Upsert(Object::Settings(custom.clone()))]).unwrap();
        assert_eq!(set.settings, custom);
        // A change that edits something else keeps them.
        let product = Object::Product(rampart_model::config::Product {
            name: "p".into(),
            description: String::new(),
        });
        let kept = candidate(&set, &[Edit::Upsert(product)]).unwrap();
        assert_eq!(kept.settings, custom);
        let del = |name: &str| Edit::Delete {
            kind: ObjectKind::Settings,
            name: name.to_owned(),
        };
        assert_eq!(
            candidate(&set, &[del("settings")]).unwrap().settings,
            Settings::default()
        );
        // There is one settings object, named `settings`; none to delete at the defaults.
        assert_eq!(
            candidate(&set, &[del("other")]).unwrap_err()[0].path,
            "edits[0]"
        );
        assert_eq!(
            candidate(&current, &[del("settings")]).unwrap_err()[0].path,
            "edits[0]"
        );
    }

    #[test]
    fn candidate_reports_duplicate_and_missing_edits_with_paths() {
        let current = Config::from_objects(Environment::Dev, []);
        let del = Edit::Delete {
            kind: ObjectKind::Product,
            name: "nope".to_owned(),
        };
        let errors = candidate(&current, &[del.clone(), del]).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].path, "edits[0]");
        assert_eq!(errors[1].path, "edits[1]");
        assert_eq!(candidate(&current, &[]).unwrap_err()[0].path, "edits");
    }
}
