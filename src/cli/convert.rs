//! `awd convert IN OUT`: a fastai AWD-LSTM checkpoint from one format to the other.

use std::path::Path;

use anyhow::{Context, bail};

use crate::checkpoint::fastai;
use crate::device;
use crate::dropout::Masks;

pub fn run(input: &Path, output: &Path, force: bool) -> anyhow::Result<bool> {
    if output.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", output.display());
    }
    let tensors = fastai::read_tensors(input)?;
    let config = fastai::infer_config(&tensors)
        .with_context(|| format!("checkpoint {}", input.display()))?;
    let model = fastai::from_state_dict(&tensors, &config, &Masks::default(), &device::cpu())
        .with_context(|| format!("checkpoint {}", input.display()))?;
    fastai::write_tensors(output, &fastai::to_state_dict(&model))?;
    println!(
        "{} -> {}: AWD-LSTM vocab {}, emb {}, hidden {}, {} layers{}",
        input.display(),
        output.display(),
        config.vocab_size,
        config.emb_size,
        config.hidden_size,
        config.n_layers,
        if config.bidirectional {
            ", bidirectional"
        } else {
            ""
        }
    );
    Ok(true)
}
