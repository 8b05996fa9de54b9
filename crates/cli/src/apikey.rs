//! `rampart apikey new`: mint an API key in rampart's checkable format
//! ([`rampart_model::apikey`]) from the operating system's CSPRNG, and print it once with the
//! fleet-file entry that stores only its SHA-256.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rampart_model::apikey;

use crate::output::out;

#[derive(Debug, Args)]
pub(crate) struct ApiKeyArgs {
    #[command(subcommand)]
    command: ApiKeyCommand,
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Mint a key: prints the key (give it to the client; it is not stored anywhere) and the
    /// entry to put under an `api_key` policy's `keys`.
    New {
        /// The entry's id.
        #[arg(long)]
        id: String,
        /// The tenant the key acts as.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Check that a key is well formed (its shape and check characters) and print its entry's
    /// hash and prefix. The key is read from standard input, so it stays out of `ps`.
    Check,
}

pub(crate) fn run(a: ApiKeyArgs) -> Result<()> {
    match a.command {
        ApiKeyCommand::New { id, tenant } => {
            let ident = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ident {
                anyhow::bail!(
                    "--id: use letters, digits, `.`, `_` and `-`, starting with a letter or digit"
                );
            }
            if let Some(t) = &tenant
                && (t.is_empty()
                    || t.len() > 128
                    || !t
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b",{}[]#:'\"".contains(&b)))
            {
                anyhow::bail!(
                    "--tenant: use 1 to 128 visible characters, without , {{ }} [ ] # : or quotes"
                );
            }
            let key = mint()?;
            out(&format!("key: {key}"))?;
            out(&format!("entry: {}", entry(&id, tenant.as_deref(), &key)))
        }
        ApiKeyCommand::Check => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the key from stdin")?;
            let key = line.trim();
            apikey::check(key.as_bytes()).map_err(|e| anyhow::anyhow!("not a rampart key: {e}"))?;
            out(&format!(
                "ok: sha256 {} prefix {}",
                apikey::sha256_hex(key),
                apikey::shown_prefix(key)
            ))
        }
    }
}

/// A fresh key from the OS's CSPRNG.
fn mint() -> Result<String> {
    let mut pool = [0u8; 128];
    let mut used = pool.len();
    let mut failed = None;
    let key = apikey::mint(|| {
        if used == pool.len() {
            if let Err(e) = getrandom::fill(&mut pool) {
                failed = Some(e);
            }
            used = 0;
        }
        used += 1;
        pool[used - 1]
    });
    match failed {
        Some(e) => Err(anyhow::anyhow!("cannot read random bytes from the OS: {e}")),
        None => Ok(key),
    }
}

/// The fleet-file entry of a key, as one YAML flow mapping.
fn entry(id: &str, tenant: Option<&str>, key: &str) -> String {
    let tenant = tenant.map(|t| format!(", tenant: {t}")).unwrap_or_default();
    format!(
        "{{ id: {id}, sha256: {}, format: rampart_v1, prefix: {}{tenant} }}",
        apikey::sha256_hex(key),
        apikey::shown_prefix(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_well_formed_and_differ() {
        let a = mint().unwrap();
        let b = mint().unwrap();
        assert_ne!(a, b);
        assert_eq!(apikey::check(a.as_bytes()), Ok(()));
        let e = entry("ci", Some("acme"), &a);
        assert!(e.contains(&apikey::sha256_hex(&a)) && !e.contains(&a[12..]));
    }
}
