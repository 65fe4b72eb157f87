//! `awd serve`: language models and classifiers behind HTTP (axum on tokio), JSON in and out.
//!
//! Each model is loaded once and owned by its own thread ([`worker`]), which batches the
//! requests that arrive together. The server binds 127.0.0.1 unless told otherwise, can require a
//! bearer token, bounds bodies, text lists, queues and time, and on SIGTERM or Ctrl-C stops
//! accepting, answers what is in flight, and returns.

pub mod guard;
pub mod metrics;
pub mod routes;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::data::Vocab;
use crate::error::{AwdError, Result};
use crate::jobs::models::{self, Loaded, ModelSpec};
use crate::kernels::PrecisionChoice;
use guard::ApiError;
use metrics::Metrics;
use worker::{Batching, Worker};

/// What a request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Texts in one request.
    pub max_texts: usize,
    /// Bytes of one text (or prompt).
    pub max_text_bytes: usize,
    /// Tokens one generation may ask for.
    pub max_generate: usize,
    /// Bytes of a request body (past it: 413).
    pub max_body: usize,
    /// Time a request may wait for its answer (past it: 504).
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_texts: 256,
            max_text_bytes: 100_000,
            max_generate: 1_000,
            max_body: 4 << 20,
            deadline: Duration::from_secs(30),
        }
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub models: Vec<ModelSpec>,
    pub addr: SocketAddr,
    /// Requests must carry `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    pub batching: Batching,
    /// Requests waiting per model (past it: 503 with `Retry-After`).
    pub queue: usize,
    pub limits: Limits,
    pub precision: PrecisionChoice,
}

/// What every request sees.
pub struct App {
    pub workers: Vec<Worker>,
    pub vocabs: HashMap<String, Vocab>,
    pub token: Option<String>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
}

impl App {
    /// The model a request names, or the only one of `kind`.
    pub fn pick(&self, name: Option<&str>, kind: &str) -> std::result::Result<&Worker, ApiError> {
        let of_kind: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.card.kind == kind)
            .collect();
        let w = match name {
            Some(n) => self
                .workers
                .iter()
                .find(|w| w.card.name == n)
                .ok_or_else(|| self.unknown(n))?,
            None => match &of_kind[..] {
                [one] => one,
                [] => return Err(ApiError::bad(format!("this server has no {kind}"))),
                _ => {
                    return Err(ApiError::bad(format!(
                        "`model`: name one of {}",
                        names(&of_kind)
                    )));
                }
            },
        };
        if w.card.kind != kind {
            return Err(ApiError::bad(format!(
                "`model`: `{}` is a {}, not a {kind}",
                w.card.name, w.card.kind
            )));
        }
        Ok(w)
    }

    pub fn unknown(&self, name: &str) -> ApiError {
        let all: Vec<&Worker> = self.workers.iter().collect();
        ApiError::bad(format!(
            "`model`: no model is named `{name}` (there are {})",
            names(&all)
        ))
    }

    /// A request's texts: one at least, at most `max_texts`, each at most `max_text_bytes`.
    pub fn check_texts(&self, texts: &[String]) -> std::result::Result<(), ApiError> {
        let l = &self.limits;
        if texts.is_empty() {
            return Err(ApiError::bad("`texts`: give one text at least"));
        }
        if texts.len() > l.max_texts {
            return Err(ApiError::bad(format!(
                "`texts`: {} texts, at most {} a request",
                texts.len(),
                l.max_texts
            )));
        }
        if let Some(i) = texts.iter().position(|t| t.len() > l.max_text_bytes) {
            return Err(ApiError::bad(format!(
                "`texts[{i}]`: {} bytes, at most {}",
                texts[i].len(),
                l.max_text_bytes
            )));
        }
        Ok(())
    }
}

fn names(workers: &[&Worker]) -> String {
    workers
        .iter()
        .map(|w| format!("`{}`", w.card.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The routes over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .route("/v1/models", get(routes::models))
        .route("/v1/classify", post(routes::classify))
        .route("/v1/score", post(routes::score))
        .route("/v1/generate", post(routes::generate))
        .route("/v1/tokenize", post(routes::tokenize))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::authorize,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::measure,
        ))
        .layer(DefaultBodyLimit::max(app.limits.max_body))
        .with_state(app)
}

/// Loads every model, then serves until SIGTERM or Ctrl-C; `ready` is told the bound address.
pub fn run(opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    models::check_names(&opts.models)?;
    let device = crate::device::cpu();
    let metrics = Arc::new(Metrics::new());
    let (mut workers, mut vocabs) = (Vec::new(), HashMap::new());
    for spec in &opts.models {
        let (model, card) = models::load(spec, opts.precision, &device)?;
        let vocab = match &model {
            Loaded::Classifier(c) => c.models[0].1.vocab.clone(),
            Loaded::Lm(lm) => lm.vocab.clone(),
        };
        vocabs.insert(card.name.clone(), vocab);
        workers.push(Worker::spawn(
            model,
            card,
            opts.batching,
            opts.queue,
            metrics.clone(),
            device.clone(),
        ));
    }
    let app = Arc::new(App {
        workers,
        vocabs,
        token: opts.token,
        limits: opts.limits,
        metrics,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AwdError::Config(format!("starting the server's runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|e| AwdError::Config(format!("cannot listen on {}: {e}", opts.addr)))?;
        let bound = listener
            .local_addr()
            .map_err(|e| AwdError::Config(e.to_string()))?;
        ready(bound);
        axum::serve(listener, router(app))
            .with_graceful_shutdown(stopped())
            .await
            .map_err(|e| AwdError::Config(format!("serving on {bound}: {e}")))
    })
}

/// SIGTERM or Ctrl-C.
async fn stopped() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
