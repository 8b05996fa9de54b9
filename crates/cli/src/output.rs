//! What every command prints through: stdout one line at a time, JSON as the API sent it,
//! numbers without needless decimals, secrets to private files, and the marker of a failure
//! already explained on stderr.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// A failure already explained to the user: `main` exits non-zero without printing more.
#[derive(Debug)]
pub(crate) struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}

impl std::error::Error for Reported {}

/// Print a line to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn out(line: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Print a body as pretty JSON, as the API sent it: through `serde_json::Value`, so an object's
/// keys come out sorted whatever the order of the type's fields.
pub(crate) fn json_out<T: Serialize>(v: &T) -> Result<()> {
    let v = serde_json::to_value(v).context("cannot encode JSON")?;
    out(&serde_json::to_string_pretty(&v).context("cannot encode JSON")?)
}

/// An answer of the API: its JSON with `--json`, else what `text` prints of it.
pub(crate) fn answer<T: Serialize>(
    json: bool,
    v: &T,
    text: impl FnOnce(&T) -> Result<()>,
) -> Result<()> {
    if json { json_out(v) } else { text(v) }
}

/// A number without needless decimals: `1`, `4.55`, `0.333`.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Write a secret (a token) to a file only its owner may read (mode 0600 on Unix).
pub(crate) fn write_secret(path: &Path, secret: &str) -> Result<()> {
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
