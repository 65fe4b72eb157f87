//! Writing files so that a crash never leaves half of one.

use std::io::Write;
use std::path::Path;

use crate::error::{AwdError, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// then renamed over `path`. A crash leaves either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| AwdError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| AwdError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| AwdError::io(path, e))?;
    tmp.persist(path).map_err(|e| AwdError::io(path, e.error))?;
    Ok(())
}
