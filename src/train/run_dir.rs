//! A run's directory: what it holds, how it is claimed without overwriting an earlier run, and
//! what a run ends with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;

use crate::error::{AwdError, Result};

/// Where a run writes, and how it is driven.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    pub device: Device,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// Set (by Ctrl-C) to stop after the current step, saving a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// The ranks of a data-parallel job (one process: a single rank). Rank 0 alone writes.
    pub dist: std::rc::Rc<crate::dist::Dist>,
}

pub use crate::checkpoint::{MODEL_FILE, model_file};

impl RunOptions {
    /// A run in `out_dir` on `device` (an autodiff one), on one process, without a progress bar
    /// or a Ctrl-C handler: what a library caller starts from.
    pub fn quiet(out_dir: PathBuf, device: Device) -> Self {
        Self {
            out_dir,
            device,
            progress: false,
            stop: Default::default(),
            dist: Default::default(),
        }
    }

    pub fn model_path(&self) -> PathBuf {
        self.out_dir.join(MODEL_FILE)
    }
    pub fn state_path(&self) -> PathBuf {
        self.out_dir.join("train-state.safetensors")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.out_dir.join("metrics.csv")
    }
    pub fn plot_path(&self) -> PathBuf {
        self.out_dir.join("curves.png")
    }
    /// The encoder alone, in fastai's `save_encoder` layout (fastai-level runs).
    pub fn encoder_path(&self) -> PathBuf {
        self.out_dir.join("encoder.pth")
    }
    /// The vocabulary as a fastai pickle (fastai-level runs).
    pub fn vocab_path(&self) -> PathBuf {
        self.out_dir.join("itos.pkl")
    }

    /// Creates the output directory, checked writable; refuses to overwrite an earlier run
    /// unless asked to. Only a prepared directory starts a [`Trainer`](super::Trainer).
    pub fn prepare(self, overwrite: bool) -> Result<Prepared> {
        let dir = &self.out_dir;
        for p in [self.state_path(), self.model_path()] {
            if p.exists() && !overwrite {
                return Err(AwdError::Config(format!(
                    "{} holds a run already ({}): pass --resume to continue it or --force to start over",
                    dir.display(),
                    file_name(&p)
                )));
            }
        }
        if !self.dist.is_writer() {
            return Ok(Prepared(self));
        }
        std::fs::create_dir_all(dir).map_err(|e| AwdError::io(dir, e))?;
        // Fail now, not at the first checkpoint, if the directory cannot be written.
        let probe = tempfile::NamedTempFile::new_in(dir).map_err(|e| AwdError::io(dir, e))?;
        drop(probe);
        Ok(Prepared(self))
    }
}

/// Run options whose directory [`RunOptions::prepare`] has claimed.
#[derive(Debug, Clone)]
pub struct Prepared(RunOptions);

impl Prepared {
    /// The run's options.
    pub fn options(&self) -> &RunOptions {
        &self.0
    }

    pub fn into_options(self) -> RunOptions {
        self.0
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default()
}
