//! `awd serve`: flags → [`crate::serve::ServeOptions`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::jobs::models::ModelSpec;
use crate::kernels::PrecisionChoice;
use crate::serve::worker::Batching;
use crate::serve::{Limits, ServeOptions};

/// The environment variable that may hold the bearer token.
const TOKEN_VAR: &str = "AWD_SERVE_TOKEN";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A model to serve, `PATH` or `NAME=PATH` (repeat for several): an awd run directory or
    /// model file, a fastai `export.pkl`, or a fastai `.pth` (with --vocab).
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Where to listen (127.0.0.1: this machine only; port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// A fastai `.pth` model's vocabulary pickle.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// A fastai classifier `.pth`'s classes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// A file holding the bearer token requests must carry (else $AWD_SERVE_TOKEN, if set).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Documents run together at most.
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// Tokens run together at most.
    #[arg(long, default_value_t = 16_384)]
    pub max_batch_tokens: usize,
    /// Milliseconds a batch waits for more requests.
    #[arg(long, default_value_t = 2)]
    pub max_wait_ms: u64,
    /// Requests waiting per model; past it, 503 with Retry-After.
    #[arg(long, default_value_t = 1024)]
    pub queue: usize,
    /// Texts a request may hold.
    #[arg(long, default_value_t = 256)]
    pub max_texts: usize,
    /// Bytes a request body may hold; past it, 413.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body: usize,
    /// Milliseconds a request may wait for its answer; past it, 504.
    #[arg(long, default_value_t = 30_000)]
    pub deadline_ms: u64,
    /// The products' operands: f32, bf16, or auto.
    #[arg(long, value_enum, default_value_t)]
    pub precision: PrecisionChoice,
}

pub fn run(args: ServeArgs) -> anyhow::Result<bool> {
    let token = match &args.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("--token-file {}: {e}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var(TOKEN_VAR).ok(),
    };
    if token.as_deref() == Some("") {
        anyhow::bail!("the bearer token is empty");
    }
    let models = args
        .models
        .iter()
        .map(|m| ModelSpec {
            vocab: args.vocab.clone(),
            classes: args.classes.clone(),
            ..ModelSpec::parse(m)
        })
        .collect();
    let defaults = Limits::default();
    let opts = ServeOptions {
        models,
        addr: args.addr,
        token,
        batching: Batching {
            max_docs: args.max_batch.max(1),
            max_tokens: args.max_batch_tokens.max(1),
            max_wait: Duration::from_millis(args.max_wait_ms),
        },
        queue: args.queue,
        limits: Limits {
            max_texts: args.max_texts.max(1),
            max_body: args.max_body,
            deadline: Duration::from_millis(args.deadline_ms.max(1)),
            ..defaults
        },
        precision: args.precision,
    };
    super::note_precision(args.precision, &crate::device::cpu());
    crate::serve::run(opts, |addr| {
        // Tests and scripts read this line for the address (port 0 picks a free one).
        println!("listening on http://{addr}");
    })?;
    eprintln!("stopped: every request in flight was answered");
    Ok(true)
}
