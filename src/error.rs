//! The error type of the library: every problem a user can cause is a value, never a panic.

use thiserror::Error;

/// Everything that can go wrong in awd because of its input.
#[derive(Debug, Error)]
pub enum AwdError {
    /// A parameter path (or glob) matched nothing in the module.
    #[error("no parameter matches `{pattern}`; the module has: {}", available.join(", "))]
    UnknownPath {
        pattern: String,
        available: Vec<String>,
    },
    /// A dropout probability outside `[0, 1)`.
    #[error("dropout probability {name} = {p} is outside [0, 1)")]
    BadProbability { name: String, p: f64 },
    /// A replayed mask whose shape is not the one asked for.
    #[error("replayed mask #{index} has shape {got:?}, but the layer needs {expected:?}")]
    MaskShape {
        index: usize,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// A replayed mask whose kept entries are not scaled by `1/(1-p)`.
    #[error("replayed mask #{index} holds {value}, but a mask for p = {p} holds only 0 and {}", 1.0 / (1.0 - p))]
    MaskScale { index: usize, value: f32, p: f64 },
    /// The replay source ran out of masks.
    #[error("the replay source is empty: mask #{index} was asked for, {available} were given")]
    MasksExhausted { index: usize, available: usize },
    /// A tensor of the wrong shape for the slot it is loaded into.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A checkpoint that cannot be read or does not fit the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// A configuration value that makes no sense.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A corpus that cannot be used.
    #[error("corpus {path}: {reason}")]
    Corpus { path: String, reason: String },
    /// A download that failed or was refused; nothing of it is cached.
    #[error("download of {name} from {url}: {reason}")]
    Download {
        name: String,
        url: String,
        reason: String,
    },
    /// Training produced a non-finite loss or gradient.
    #[error("training stopped: {0}")]
    Diverged(String),
    /// A file system error, with the path it happened on. (Not a `#[source]`: the message says
    /// it once, and an error chain would print it a second time.)
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

impl AwdError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        AwdError::Io {
            path: path.as_ref().display().to_string(),
            error: source,
        }
    }

    pub fn checkpoint(path: impl AsRef<std::path::Path>, reason: impl Into<String>) -> Self {
        AwdError::Checkpoint {
            path: path.as_ref().display().to_string(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = AwdError> = std::result::Result<T, E>;

/// Checks that a dropout probability lies in `[0, 1)`.
pub fn check_probability(name: &str, p: f64) -> Result<()> {
    if p.is_finite() && (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(AwdError::BadProbability {
            name: name.to_string(),
            p,
        })
    }
}
