//! Tokens and the audit log.

use rampart_api::{AuditReport, Role, TokenKind, TokenRecord};
use rampart_model::EnumName;
use rampart_store::ops::*;
use serde_json::{Value, json};

use super::{Result, Service, commit_audited};
use crate::audit::{self, AuditAction, ChainError};
use rampart_store::AuditRecord;

impl Service {
    /// Create a token, audited in the same transaction. Returns its secret (shown once).
    pub async fn create_token(
        &self,
        actor: &str,
        name: &str,
        kind: TokenKind,
        role: Option<Role>,
    ) -> Result<(TokenRecord, String)> {
        let mut tx = self.store.begin().await?;
        let (record, secret) = tx.create_token(name, kind, role).await?;
        let detail = json!({ "id": record.id, "kind": kind.as_str(), "role": record.role_name() });
        commit_audited(
            tx,
            actor,
            AuditAction::TokenCreated,
            &format!("token/{name}"),
            detail,
        )
        .await?;
        Ok((record, secret))
    }

    /// The audit log, as [`audit::AuditEntry`] values. A row that cannot be read as one (an
    /// unknown action, a detail that is not JSON) is kept with an empty hash so that
    /// verification names it as edited.
    pub async fn audit_entries(&self) -> Result<Vec<audit::AuditEntry>> {
        let rows = self.store.audit_rows().await?;
        Ok(rows.into_iter().map(entry_of).collect())
    }

    /// Verify the whole audit chain.
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        let rows = self.store.audit_rows().await?;
        let unreadable: Option<u64> = rows
            .iter()
            .find(|r| r.action.is_none() || serde_json::from_str::<Value>(&r.detail).is_err())
            .map(|r| r.seq);
        let (head_seq, head_hash) = rows.last().map_or_else(
            || (0, audit::GENESIS_HASH.to_owned()),
            |r| (r.seq, r.hash.clone()),
        );
        let entries: Vec<audit::AuditEntry> = rows.into_iter().map(entry_of).collect();
        let n = entries.len() as u64;
        let outcome = match (audit::verify(&entries), unreadable) {
            (Err(e), _) => Err((e.to_string(), chain_seq(&e))),
            (Ok(()), Some(seq)) => Err((format!("entry {seq} was edited: it cannot be read"), seq)),
            (Ok(()), None) => Ok(()),
        };
        Ok(match outcome {
            Ok(()) => AuditReport {
                ok: true,
                entries: n,
                head_seq,
                head_hash,
                error: None,
                bad_seq: None,
            },
            Err((msg, seq)) => AuditReport {
                ok: false,
                entries: n,
                head_seq,
                head_hash,
                error: Some(msg),
                bad_seq: Some(seq),
            },
        })
    }
}

fn chain_seq(e: &ChainError) -> u64 {
    match e {
        ChainError::Edited { seq }
        | ChainError::MissingStart { seq }
        | ChainError::BadGenesis { seq }
        | ChainError::Gap { seq, .. }
        | ChainError::OutOfOrder { seq, .. }
        | ChainError::BrokenLink { seq, .. }
        | ChainError::HeadMismatch { seq } => *seq,
        ChainError::Truncated { last, .. } => *last,
    }
}

fn entry_of(e: AuditRecord) -> audit::AuditEntry {
    match (e.action, serde_json::from_str::<Value>(&e.detail)) {
        (Some(action), Ok(detail)) => audit::AuditEntry {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor,
            action,
            subject: e.subject,
            detail,
            prev_hash: e.prev_hash,
            hash: e.hash,
        },
        _ => audit::AuditEntry {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor,
            action: AuditAction::ChangeSubmitted,
            subject: e.subject,
            detail: Value::String(e.detail),
            prev_hash: e.prev_hash,
            hash: String::new(),
        },
    }
}
