//! Public data sets awd can fetch when online, cached and checked by SHA-256.

use std::path::PathBuf;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{AwdError, Result};

/// A downloadable text file.
pub struct Remote {
    pub name: &'static str,
    pub url: &'static str,
    pub sha256: &'static str,
}

pub const TINY_SHAKESPEARE: Remote = Remote {
    name: "tinyshakespeare.txt",
    url: "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256: "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
};

fn cache_dir() -> PathBuf {
    std::env::var_os("AWD_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/awd")))
        .unwrap_or_else(|| PathBuf::from(".awd-cache"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cached file, downloaded first (with `curl`) if it is not in the cache.
///
/// `AWD_DATASET_URL` replaces the address (a mirror); the checksum is checked all the same.
pub fn fetch(remote: &Remote) -> Result<PathBuf> {
    let url = std::env::var("AWD_DATASET_URL").unwrap_or_else(|_| remote.url.to_string());
    let dir = cache_dir();
    let path = dir.join(remote.name);
    if let Ok(bytes) = std::fs::read(&path)
        && sha256_hex(&bytes) == remote.sha256
    {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| AwdError::io(&dir, e))?;
    let offline = |why: String| {
        AwdError::Config(format!(
            "could not download {} from {url} ({why}); when offline, pass the file itself with --data FILE",
            remote.name
        ))
    };
    let out = Command::new("curl")
        .args(["-fsSL", "--max-time", "120", &url])
        .output()
        .map_err(|e| offline(format!("curl: {e}")))?;
    if !out.status.success() {
        return Err(offline(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let got = sha256_hex(&out.stdout);
    if got != remote.sha256 {
        return Err(offline(format!(
            "checksum {got} is not the expected {}",
            remote.sha256
        )));
    }
    crate::checkpoint::write_atomic(&path, &out.stdout)?;
    Ok(path)
}

/// The weights and vocabulary `--pretrained` names: a file or directory as given (with
/// `--pretrained-vocab`, or `None` for a directory holding both).
pub fn pretrained(
    given: &std::path::Path,
    vocab: Option<&std::path::Path>,
) -> Result<(PathBuf, Option<PathBuf>)> {
    if !given.exists() {
        return Err(AwdError::io(
            given,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    Ok((given.to_path_buf(), vocab.map(|v| v.to_path_buf())))
}
