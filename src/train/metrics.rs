//! The metrics CSV of a run: one row per log interval and per validation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{AwdError, Result};

pub const HEADER: &str = "step,epoch,train_loss,val_loss,val_ppl,lr,tokens_per_s,elapsed_s";

/// One row; absent values are empty cells.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub step: usize,
    pub epoch: usize,
    pub train_loss: Option<f64>,
    pub val_loss: Option<f64>,
    pub lr: f64,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

pub struct Metrics {
    path: PathBuf,
    file: File,
}

impl Metrics {
    /// Opens `path`: appended to when continuing a run, else created with its header.
    pub fn open(path: &Path, append: bool) -> Result<Self> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .map_err(|e| AwdError::io(path, e))?;
        let mut m = Self {
            path: path.to_path_buf(),
            file,
        };
        if !(append && existed) {
            m.line(HEADER)?;
        }
        Ok(m)
    }

    fn line(&mut self, s: &str) -> Result<()> {
        writeln!(self.file, "{s}").map_err(|e| AwdError::io(&self.path, e))
    }

    pub fn write(&mut self, r: &Row) -> Result<()> {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        let line = format!(
            "{},{},{},{},{},{:.6e},{:.1},{:.2}",
            r.step,
            r.epoch,
            opt(r.train_loss),
            opt(r.val_loss),
            opt(r.val_loss.map(f64::exp)),
            r.lr,
            r.tokens_per_s,
            r.elapsed_s
        );
        self.line(&line)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| AwdError::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The `elapsed_s` of the last row of a metrics file (0 when there is none).
pub fn last_elapsed(path: &Path) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .last()
                .and_then(|l| l.rsplit(',').next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}
