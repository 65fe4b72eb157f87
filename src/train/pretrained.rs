//! A fastai pretrained language model as `language_model_learner(pretrained_fnames=…)` loads it:
//! the weights (`.pth`) and the vocabulary they were trained with (`.pkl`), the embeddings matched
//! to the new corpus's vocabulary (fastai's `match_embeds`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::TrainConfig;
use super::state::structural_param_ids;
use crate::checkpoint::fastai;
use crate::data::download::{self, Remote};
use crate::data::{Vocab, fastai_vocab};
use crate::device::Device;
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::{AwdLstmConfig, LanguageModel, ModelFlags};
use crate::params::HostTensor;

/// Pretrained weights read, with their vocabulary and sizes.
pub struct Pretrained {
    pub weights: PathBuf,
    pub vocab: Vocab,
    pub config: AwdLstmConfig,
    /// A backward model (trained on each document reversed): fine-tuning reads data backwards.
    pub backwards: bool,
    tensors: BTreeMap<String, HostTensor>,
}

/// fastai's pretrained models by the names `--pretrained` takes.
pub const NAMED: [(&str, &Remote); 3] = [
    ("wt103", &download::WT103_FWD),
    ("wt103-fwd", &download::WT103_FWD),
    ("wt103-bwd", &download::WT103_BWD),
];

impl Pretrained {
    /// What `--pretrained` names: weights or a directory as given (with `vocab`, or a directory
    /// holding both), or, where no such path exists, a model of fastai's zoo by name, downloaded
    /// and cached. The zoo publishes no checksum, so an archive is cached only once its weights
    /// and vocabulary read as a fastai AWD-LSTM.
    pub fn locate(given: &Path, vocab: Option<&Path>) -> Result<Self> {
        if given.exists() {
            return Self::read(given, vocab);
        }
        let name = given.to_string_lossy();
        match NAMED.iter().find(|(n, _)| *n == name) {
            Some((_, remote)) => {
                let dir = download::fetch_archive(remote, |dir| Self::read(dir, None).map(drop))?;
                let mut model = Self::read(&dir, None)?;
                model.backwards = remote.name == download::WT103_BWD.name;
                Ok(model)
            }
            None => Err(AwdError::Config(format!(
                "--pretrained {name}: no such file or directory, nor a model awd knows by name ({})",
                NAMED.map(|(n, _)| n).join(", ")
            ))),
        }
    }

    /// Reads `weights` (a `.pth` or `.safetensors` in fastai's names) and `vocab` (a fastai
    /// vocabulary pickle). `weights` may be a directory holding one `.pth` and one `.pkl`.
    pub fn read(weights: &Path, vocab: Option<&Path>) -> Result<Self> {
        let (weights, vocab) = match vocab {
            Some(v) => (weights.to_path_buf(), v.to_path_buf()),
            None if weights.is_dir() => (only(weights, "pth")?, only(weights, "pkl")?),
            None => {
                return Err(AwdError::Config(format!(
                    "--pretrained {} needs its vocabulary: --pretrained-vocab VOCAB.pkl (or a directory holding both)",
                    weights.display()
                )));
            }
        };
        let tensors = fastai::read_tensors(&weights)?;
        let config = fastai::infer_config(&tensors)
            .map_err(|e| AwdError::checkpoint(&weights, e.to_string()))?;
        let vocab = fastai_vocab::read_pickle(&vocab)?;
        if vocab.len() != config.vocab_size {
            return Err(AwdError::checkpoint(
                &weights,
                format!(
                    "its embedding has {} rows but the vocabulary {} tokens: they were not trained together",
                    config.vocab_size,
                    vocab.len()
                ),
            ));
        }
        Ok(Self {
            weights,
            vocab,
            config,
            backwards: false,
            tensors,
        })
    }

    /// Writes the pretrained sizes into `cfg`'s model; a size the user set (`explicit`) that
    /// differs is an error naming the tensor and both shapes.
    pub fn configure(&self, cfg: &mut TrainConfig, explicit: &ModelFlags) -> Result<()> {
        let c = &self.config;
        let dirs = if c.bidirectional { 2 } else { 1 };
        let misfit = |flag: &str, tensor: &str, has: String, wants: String| {
            Err(AwdError::Config(format!(
                "the pretrained weights {} do not fit {flag}: `{tensor}` has shape {has}, {flag} needs {wants}",
                self.weights.display()
            )))
        };
        if let Some(e) = explicit.emb_size.filter(|&e| e != c.emb_size) {
            let v = c.vocab_size;
            return misfit(
                &format!("--emb-size {e}"),
                "0.encoder.weight",
                format!("[{v}, {}]", c.emb_size),
                format!("[{v}, {e}]"),
            );
        }
        if let Some(h) = explicit.hidden_size.filter(|&h| h != c.hidden_size) {
            let (has, wants) = (c.hidden_size / dirs, h / dirs);
            return misfit(
                &format!("--hidden-size {h}"),
                "0.rnns.0.weight_hh_l0_raw",
                format!("[{}, {has}]", 4 * has),
                format!("[{}, {wants}]", 4 * wants),
            );
        }
        if let Some(n) = explicit.n_layers.filter(|&n| n != c.n_layers) {
            return misfit(
                &format!("--n-layers {n}"),
                &format!("0.rnns.{}.weight_hh_l0_raw", n.min(c.n_layers)),
                if n > c.n_layers {
                    "none".into()
                } else {
                    "a tensor".into()
                },
                format!("{n} layers, the weights have {}", c.n_layers),
            );
        }
        cfg.backwards |= self.backwards;
        let m = &mut cfg.model;
        (m.emb_size, m.hidden_size, m.n_layers) = (c.emb_size, c.hidden_size, c.n_layers);
        (m.bidirectional, m.tie_weights, m.out_bias) = (c.bidirectional, c.tie_weights, c.out_bias);
        Ok(())
    }

    /// The model for a corpus with vocabulary `vocab`: rows matched as fastai's `match_embeds`,
    /// dropouts from `cfg` (times its `drop_mult`).
    pub fn model(
        &self,
        cfg: &TrainConfig,
        vocab: &Vocab,
        masks: &Masks,
        device: &Device,
    ) -> Result<LanguageModel> {
        let mut tensors = self.tensors.clone();
        fastai::match_embeds(&mut tensors, self.vocab.itos(), vocab.itos())?;
        let model =
            fastai::from_state_dict(&tensors, &cfg.model_config(vocab.len()), masks, device)
                .map_err(|e| AwdError::checkpoint(&self.weights, e.to_string()))?;
        Ok(structural_param_ids(model))
    }

    /// How many of `vocab`'s tokens the pretrained vocabulary knows.
    pub fn known(&self, vocab: &Vocab) -> usize {
        vocab
            .itos()
            .iter()
            .filter(|t| self.vocab.get(t).is_some())
            .count()
    }
}

/// The one file with extension `ext` in `dir`.
fn only(dir: &Path, ext: &str) -> Result<PathBuf> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| AwdError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    match &found[..] {
        [one] => Ok(one.clone()),
        _ => Err(AwdError::Config(format!(
            "{} must hold exactly one .{ext} file (fastai's weights .pth and vocabulary .pkl); it holds {}",
            dir.display(),
            found.len()
        ))),
    }
}
