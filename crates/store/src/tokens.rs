//! API and gateway tokens. Only a secret's SHA-256 is stored.

use rampart_api::{NO_ROLE, Role, TokenKind, TokenRecord, role_name};
use rampart_model::EnumName;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{
    hash_secret, new_id, now_ms, random_bytes, stored_bool, stored_name, stored_u64,
};
use crate::{Handle, Result, StoreError};

/// The prefix of every token secret.
pub const TOKEN_PREFIX: &str = "rpt_";

const TOKEN_COLUMNS: &str = "SELECT id, name, kind, role, created_at, revoked FROM tokens";

/// Tokens, on any [`Handle`].
pub trait Tokens: Handle {
    /// Create a token and return it with its secret (`rpt_` and 32 hex digits, from
    /// /dev/urandom). Only the secret's SHA-256 is stored: the secret cannot be shown again.
    async fn create_token(
        self,
        name: &str,
        kind: TokenKind,
        role: Option<Role>,
    ) -> Result<(TokenRecord, String)> {
        self.run(async |c| {
            let secret = format!("{TOKEN_PREFIX}{}", hex::encode(random_bytes::<16>()?));
            let id = new_id("tok")?;
            let now = now_ms();
            sqlx::query(
                "INSERT INTO tokens (id, name, kind, role, hash, created_at, revoked) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0)",
            )
            .bind(id.as_str())
            .bind(name)
            .bind(kind.as_str())
            .bind(role_name(role))
            .bind(hash_secret(&secret))
            .bind(now)
            .execute(&mut *c)
            .await?;
            let record = TokenRecord {
                id,
                name: name.to_owned(),
                kind,
                role,
                created_at_ms: stored_u64(now, "tokens.created_at")?,
                revoked: false,
            };
            Ok((record, secret))
        })
        .await
    }

    /// The live (not revoked) token with this secret, if any.
    async fn token_by_secret(self, secret: &str) -> Result<Option<TokenRecord>> {
        self.run(async |c| {
            let row = sqlx::query(&format!("{TOKEN_COLUMNS} WHERE hash = $1 AND revoked = 0"))
                .bind(hash_secret(secret))
                .fetch_optional(&mut *c)
                .await?;
            row.as_ref().map(token_from).transpose()
        })
        .await
    }

    /// Revoke a token; idempotent. [`StoreError::NotFound`] if there is no such token.
    async fn revoke_token(self, id: &str) -> Result<()> {
        self.run(async |c| {
            let revoked = sqlx::query("UPDATE tokens SET revoked = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut *c)
                .await?;
            if revoked.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    what: format!("token `{id}`"),
                });
            }
            Ok(())
        })
        .await
    }

    /// Every token, revoked ones included, oldest first.
    async fn list_tokens(self) -> Result<Vec<TokenRecord>> {
        self.run(async |c| {
            let rows = sqlx::query(&format!("{TOKEN_COLUMNS} ORDER BY created_at, id"))
                .fetch_all(&mut *c)
                .await?;
            rows.iter().map(token_from).collect()
        })
        .await
    }
}

impl<H: Handle> Tokens for H {}

fn token_from(row: &AnyRow) -> Result<TokenRecord> {
    let role: String = row.try_get("role")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: stored_name(
            "tokens.kind",
            "token kind",
            &row.try_get::<String, _>("kind")?,
        )?,
        role: match role.as_str() {
            NO_ROLE => None,
            role => Some(stored_name("tokens.role", "role", role)?),
        },
        created_at_ms: stored_u64(row.try_get("created_at")?, "tokens.created_at")?,
        revoked: stored_bool(row.try_get("revoked")?, "tokens.revoked")?,
    })
}
