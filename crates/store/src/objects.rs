//! Environments and their objects: the version heads, every version of every object, and the
//! configuration at a version.

use std::collections::HashSet;

use rampart_model::EnumName;
use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::config::{Config, Environment};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::codec::{arg_i64, corrupt, now_ms, stored_name, stored_u64};
use crate::{Handle, Result, StoreError};

/// One stored version of one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectVersion {
    pub kind: ObjectKind,
    pub name: String,
    /// The environment version this write produced.
    pub version: u64,
    /// `None` records a deletion.
    pub object: Option<Object>,
    pub author: String,
    pub change_id: String,
    pub created_at_ms: u64,
}

/// Environments and their objects, on any [`Handle`].
pub trait Objects: Handle {
    /// The current version of `env`: 0 before its first write.
    async fn head(self, env: Environment) -> Result<u64> {
        self.run(async |c| head(c, env).await).await
    }

    /// Append `edits` to `env` as version `base_version + 1`, if `env` is still at
    /// `base_version`; else [`StoreError::Conflict`] and nothing is written. Returns the new
    /// version. Deleting an object that does not exist is [`StoreError::NotFound`]; naming
    /// one object twice, or no edits at all, is [`StoreError::Invalid`].
    async fn apply_edits(
        self,
        env: Environment,
        base_version: u64,
        edits: &[Edit],
        author: &str,
        change_id: &str,
    ) -> Result<u64> {
        self.atomic(async |c| {
            let rows = encode_edits(edits)?;
            apply_edits(c, env, base_version, &rows, author, change_id).await
        })
        .await
    }

    /// The current configuration of `env` and its version. Each list is ordered by name (byte
    /// order), the same on both backends; that order does not decide anything (route
    /// precedence is computed from the routes themselves). An environment without a settings
    /// object, such as one written before settings were objects, has the default settings.
    async fn config(self, env: Environment) -> Result<(Config, u64)> {
        self.run(async |c| {
            let version = head(c, env).await?;
            let objects = objects_at(c, env, version).await?;
            Ok((config_from(env, objects), version))
        })
        .await
    }

    /// The configuration of `env` as it was at `version`.
    async fn config_at(self, env: Environment, version: u64) -> Result<Config> {
        self.run(async |c| {
            let current = head(c, env).await?;
            if version > current {
                return Err(StoreError::NotFound {
                    what: format!("version {version} of {env} (its current version is {current})"),
                });
            }
            Ok(config_from(env, objects_at(c, env, version).await?))
        })
        .await
    }

    /// The live objects of `env` at `version`, ordered by kind then name, with their history
    /// metadata.
    async fn objects_at(self, env: Environment, version: u64) -> Result<Vec<ObjectVersion>> {
        self.run(async |c| objects_at(c, env, version).await).await
    }

    /// Every stored version of one object, oldest first (deletions included).
    async fn object_history(
        self,
        env: Environment,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Vec<ObjectVersion>> {
        self.run(async |c| {
            let rows = sqlx::query(
                "SELECT kind, name, version, body, author, change_id, created_at FROM objects \
                 WHERE env = $1 AND kind = $2 AND name = $3 ORDER BY version",
            )
            .bind(env.as_str())
            .bind(kind.as_str())
            .bind(name)
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(|r| object_version_from(env, r)).collect()
        })
        .await
    }
}

impl<H: Handle> Objects for H {}

pub(crate) async fn head(c: &mut AnyConnection, env: Environment) -> Result<u64> {
    let version: Option<i64> = sqlx::query_scalar("SELECT version FROM env_heads WHERE env = $1")
        .bind(env.as_str())
        .fetch_optional(&mut *c)
        .await?;
    version.map_or(Ok(0), |v| stored_u64(v, "env_heads.version"))
}

/// One edit, checked and encoded: its kind, its name, and its body (`None`: a deletion).
type EditRow<'a> = (ObjectKind, &'a str, Option<String>);

/// Check and encode every edit before touching the database.
fn encode_edits(edits: &[Edit]) -> Result<Vec<EditRow<'_>>> {
    if edits.is_empty() {
        return Err(StoreError::Invalid {
            reason: "a write needs at least one edit".to_owned(),
        });
    }
    let mut seen = HashSet::with_capacity(edits.len());
    let mut rows = Vec::with_capacity(edits.len());
    for edit in edits {
        let (kind, name, body) = match edit {
            Edit::Upsert(object) => {
                let (kind, name) = object.key();
                let body = object_body(object).map_err(|e| StoreError::Invalid {
                    reason: format!("{kind} `{name}` does not serialize: {e}"),
                })?;
                (kind, name, Some(body))
            }
            Edit::Delete { kind, name } => (*kind, name.as_str(), None),
        };
        if !seen.insert((kind, name)) {
            return Err(StoreError::Invalid {
                reason: format!("{kind} `{name}` is edited twice in one write"),
            });
        }
        rows.push((kind, name, body));
    }
    Ok(rows)
}

async fn apply_edits(
    c: &mut AnyConnection,
    env: Environment,
    base_version: u64,
    rows: &[EditRow<'_>],
    author: &str,
    change_id: &str,
) -> Result<u64> {
    let base = arg_i64(base_version, "base version")?;
    let new = base.checked_add(1).ok_or_else(|| StoreError::Invalid {
        reason: "the environment version overflowed".to_owned(),
    })?;

    // Make sure the head row exists, then move it by compare-and-set. The first statement is
    // a write, so on every backend the transaction holds its lock before it reads anything.
    sqlx::query(
        "INSERT INTO env_heads (env, version) VALUES ($1, $2) ON CONFLICT (env) DO NOTHING",
    )
    .bind(env.as_str())
    .bind(0_i64)
    .execute(&mut *c)
    .await?;
    let moved = sqlx::query("UPDATE env_heads SET version = $1 WHERE env = $2 AND version = $3")
        .bind(new)
        .bind(env.as_str())
        .bind(base)
        .execute(&mut *c)
        .await?;
    if moved.rows_affected() != 1 {
        let actual = head(c, env).await?;
        return Err(StoreError::Conflict {
            expected: base_version,
            actual,
        });
    }

    let now = now_ms();
    for (kind, name, body) in rows {
        if body.is_none() {
            let current: Option<Option<String>> = sqlx::query_scalar(
                "SELECT body FROM objects WHERE env = $1 AND kind = $2 AND name = $3 \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(env.as_str())
            .bind(kind.as_str())
            .bind(*name)
            .fetch_optional(&mut *c)
            .await?;
            if !matches!(current, Some(Some(_))) {
                return Err(StoreError::NotFound {
                    what: format!("{kind} `{name}` in {env}"),
                });
            }
        }
        sqlx::query(
            "INSERT INTO objects (env, kind, name, version, body, author, change_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(env.as_str())
        .bind(kind.as_str())
        .bind(*name)
        .bind(new)
        .bind(body.clone())
        .bind(author)
        .bind(change_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    Ok(base_version + 1)
}

async fn objects_at(
    c: &mut AnyConnection,
    env: Environment,
    version: u64,
) -> Result<Vec<ObjectVersion>> {
    let version = arg_i64(version, "version")?;
    let rows = sqlx::query(
        "SELECT o.kind, o.name, o.version, o.body, o.author, o.change_id, o.created_at \
         FROM objects o \
         WHERE o.env = $1 AND o.body IS NOT NULL AND o.version = ( \
             SELECT MAX(i.version) FROM objects i \
             WHERE i.env = o.env AND i.kind = o.kind AND i.name = o.name AND i.version <= $2)",
    )
    .bind(env.as_str())
    .bind(version)
    .fetch_all(&mut *c)
    .await?;
    let mut objects = rows
        .iter()
        .map(|r| object_version_from(env, r))
        .collect::<Result<Vec<_>>>()?;
    // Sorted here, not by SQL: PostgreSQL's text order follows the database's collation.
    objects.sort_by(|a, b| {
        (a.kind.as_str(), a.name.as_bytes()).cmp(&(b.kind.as_str(), b.name.as_bytes()))
    });
    Ok(objects)
}

fn object_version_from(env: Environment, row: &AnyRow) -> Result<ObjectVersion> {
    let kind_text: String = row.try_get("kind")?;
    let name: String = row.try_get("name")?;
    let version = stored_u64(row.try_get("version")?, "objects.version")?;
    let kind: ObjectKind = stored_name("objects.kind", "kind", &kind_text)?;
    let what = || format!("{kind} `{name}` version {version} in {env}");
    let body: Option<String> = row.try_get("body")?;
    let object = body
        .map(|body| decode_object(kind, &body).map_err(|e| corrupt(what(), e)))
        .transpose()?;
    if let Some(object) = &object
        && object.key().1 != name
    {
        return Err(corrupt(
            what(),
            format!("its body names `{}`", object.key().1),
        ));
    }
    Ok(ObjectVersion {
        kind,
        name,
        version,
        object,
        author: row.try_get("author")?,
        change_id: row.try_get("change_id")?,
        created_at_ms: stored_u64(row.try_get("created_at")?, "objects.created_at")?,
    })
}

/// An object's body as stored: the object itself, without the kind tag.
fn object_body(object: &Object) -> serde_json::Result<String> {
    match object {
        Object::Settings(s) => serde_json::to_string(s),
        Object::Product(p) => serde_json::to_string(p),
        Object::Upstream(u) => serde_json::to_string(u),
        Object::Policy(p) => serde_json::to_string(p),
        Object::Route(r) => serde_json::to_string(r),
        Object::Flag(f) => serde_json::to_string(f),
    }
}

fn decode_object(kind: ObjectKind, body: &str) -> serde_json::Result<Object> {
    Ok(match kind {
        ObjectKind::Settings => Object::Settings(serde_json::from_str(body)?),
        ObjectKind::Product => Object::Product(serde_json::from_str(body)?),
        ObjectKind::Upstream => Object::Upstream(serde_json::from_str(body)?),
        ObjectKind::Policy => Object::Policy(serde_json::from_str(body)?),
        ObjectKind::Route => Object::Route(serde_json::from_str(body)?),
        ObjectKind::Flag => Object::Flag(serde_json::from_str(body)?),
    })
}

fn config_from(env: Environment, objects: Vec<ObjectVersion>) -> Config {
    Config::from_objects(env, objects.into_iter().filter_map(|o| o.object))
}
