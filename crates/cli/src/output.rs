//! What every command prints through: stdout one line at a time, and the marker of a failure
//! already explained on stderr.

use std::io::Write;

use anyhow::{Context, Result};

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
