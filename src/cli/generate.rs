//! `awd generate`: text from a trained model, printed as it is produced.

use std::io::Write;

use anyhow::bail;
use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::eval::{Loaded, ModelSource};
use crate::data::corpus::{EOS, Level};
use crate::data::{Specials, Vocab};
use crate::device;
use crate::params::HostTensor;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Text to continue (empty: start of a line).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 50)]
    pub tokens: usize,
    /// Softmax temperature (> 0).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Sample among the k most likely tokens only (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

fn prompt_ids(prompt: &str, level: Level, vocab: &Vocab) -> anyhow::Result<Vec<u32>> {
    let tokens: Vec<String> = match level {
        Level::Word => prompt.split_whitespace().map(String::from).collect(),
        Level::Char => prompt.chars().map(String::from).collect(),
        // A fastai model reads a document from its start: `xxbos`, then the prompt's tokens.
        Level::Fastai => crate::text::for_corpus(prompt),
    };
    let unknown: Vec<&String> = tokens.iter().filter(|t| vocab.get(t).is_none()).collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(10).map(|s| s.as_str()).collect();
        bail!(
            "the prompt has tokens the model does not know: {}",
            shown.join(", ")
        );
    }
    let mut ids: Vec<u32> = tokens.iter().map(|t| vocab.id(t)).collect();
    if ids.is_empty() {
        let start = match level {
            Level::Word => EOS,
            Level::Char => "\n",
            Level::Fastai => crate::text::rules::BOS,
        };
        match vocab.get(start) {
            Some(i) => ids.push(i),
            None => bail!("the model has no start-of-line token: give a --prompt"),
        }
    }
    Ok(ids)
}

/// Samples one id from `logits` `[V]`, never one of `banned`.
fn sample(
    logits: &[f32],
    banned: &[bool],
    temperature: f64,
    top_k: usize,
    rng: &mut ChaCha8Rng,
) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).filter(|&i| !banned[i]).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if top_k > 0 {
        order.truncate(top_k);
    }
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / temperature).exp())
        .collect();
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (&i, w) in order.iter().zip(&weights) {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    order[order.len() - 1] as u32
}

pub fn run(args: GenerateArgs) -> anyhow::Result<bool> {
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!("--temperature must be > 0");
    }
    let device = device::select(&args.device)?;
    let Loaded {
        mut model,
        vocab,
        level,
        backwards,
    } = args.source.load(&device)?;
    if backwards {
        bail!(
            "{} is a backward model (it predicts the text before a prompt); awd generate writes forwards only",
            args.source.model.display()
        );
    }
    let mut input = prompt_ids(&args.prompt, level, &vocab)?;
    // Special tokens other than the end of line are never produced (unknown, padding, ...).
    let banned: Vec<bool> = vocab
        .itos()
        .iter()
        .map(|t| {
            t != EOS
                && Specials::Fastai
                    .tokens()
                    .iter()
                    .chain(Specials::Ptb.tokens())
                    .any(|s| s == t)
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut out = std::io::stdout().lock();
    write!(out, "{}", args.prompt)?;
    let sep = if level != Level::Char && !args.prompt.is_empty() {
        " "
    } else {
        ""
    };
    write!(out, "{sep}")?;
    model.reset();
    for _ in 0..args.tokens {
        let n = input.len();
        let x: Tensor<2, Int> = Tensor::from_data(
            TensorData::new(input.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, n]),
            &device,
        );
        let logits = model
            .forward(x)?
            .logits
            .expect("forward forms the logits")
            .narrow(1, n - 1, 1);
        let last = HostTensor::from_tensor(logits).values;
        let id = sample(&last, &banned, args.temperature, args.top_k, &mut rng);
        let token = vocab.token(id);
        match level {
            Level::Word if token == EOS => writeln!(out)?,
            Level::Word | Level::Fastai => write!(out, "{token} ")?,
            Level::Char => write!(out, "{token}")?,
        }
        out.flush()?;
        input = vec![id];
    }
    writeln!(out)?;
    Ok(true)
}
