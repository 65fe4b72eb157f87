//! `awd generate`: text from a trained model, printed as it is produced.

use std::io::Write;

use super::eval::ModelSource;
use crate::data::corpus::{EOS, Level};
use crate::device;
use crate::jobs::generate::{Sampling, generate};

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

pub fn run(args: GenerateArgs) -> anyhow::Result<bool> {
    let device = device::select(&args.device)?;
    let mut lm = args.source.load(&device)?;
    let sampling = Sampling {
        tokens: args.tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        seed: args.seed,
    };
    let level = lm.level;
    let mut out = std::io::stdout().lock();
    let sep = if level != Level::Char && !args.prompt.is_empty() {
        " "
    } else {
        ""
    };
    // The prompt is written with the first token, once the model has accepted it.
    let mut failed = None;
    let mut started = false;
    generate(&mut lm, &args.prompt, &sampling, &device, |token| {
        if !std::mem::replace(&mut started, true)
            && let Err(e) = write!(out, "{}{sep}", args.prompt)
        {
            failed.get_or_insert(e);
        }
        let written = match level {
            Level::Word if token == EOS => writeln!(out),
            Level::Word | Level::Fastai => write!(out, "{token} "),
            Level::Char => write!(out, "{token}"),
        };
        if let Err(e) = written.and_then(|_| out.flush()) {
            failed.get_or_insert(e);
        }
    })
    .map_err(|e| match e {
        crate::AwdError::Config(m) if m.starts_with("a backward model") => anyhow::anyhow!(
            "{} is a backward model (it predicts the text before a prompt); awd generate writes forwards only",
            args.source.model.display()
        ),
        e => e.into(),
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if !started {
        write!(out, "{}", args.prompt)?;
    }
    writeln!(out)?;
    Ok(true)
}
