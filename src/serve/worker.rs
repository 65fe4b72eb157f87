//! One thread per model, fed by a bounded queue. Classification requests that arrive together
//! are run as one batch (up to a number of documents or tokens, waiting at most a few
//! milliseconds for more), sorted by length inside the classifier, and answered each with its own
//! documents' predictions; a document's probabilities do not depend on its batch-mates. Work
//! whose client has gone (its deadline passed) is skipped; a panic answers 500 and the thread
//! goes on.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::guard::ApiError;
use super::metrics::{Metrics, ModelLabel};
use crate::device::Device;
use crate::jobs::classify::Prediction;
use crate::jobs::generate::{Sampling, generate};
use crate::jobs::models::{Loaded, ModelCard};
use crate::jobs::score::{TokenScores, score};

pub type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// What a model is asked to do.
pub enum Work {
    Classify {
        texts: Vec<String>,
        reply: Reply<Vec<Prediction>>,
    },
    Score {
        text: String,
        top: usize,
        reply: Reply<(TokenScores, Vec<(String, f64)>)>,
    },
    Generate {
        prompt: String,
        sampling: Sampling,
        reply: Reply<Vec<String>>,
    },
}

impl Work {
    fn gone(&self) -> bool {
        match self {
            Work::Classify { reply, .. } => reply.is_closed(),
            Work::Score { reply, .. } => reply.is_closed(),
            Work::Generate { reply, .. } => reply.is_closed(),
        }
    }
}

/// How requests are grouped.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max_docs: usize,
    pub max_tokens: usize,
    pub max_wait: Duration,
}

/// A model's queue and what it is.
pub struct Worker {
    tx: SyncSender<Work>,
    pub card: ModelCard,
    metrics: Arc<Metrics>,
}

impl Worker {
    /// Starts the thread that owns `model`, with a queue of `queue` requests.
    pub fn spawn(
        model: Loaded,
        card: ModelCard,
        batching: Batching,
        queue: usize,
        metrics: Arc<Metrics>,
        device: Device,
    ) -> Self {
        let (tx, rx) = sync_channel(queue.max(1));
        let m = metrics.clone();
        let name = card.name.clone();
        std::thread::Builder::new()
            .name(format!("awd-model-{name}"))
            .spawn(move || {
                Runner {
                    model,
                    rx,
                    batching,
                    metrics: m,
                    label: ModelLabel { model: name },
                    device,
                    backlog: VecDeque::new(),
                }
                .run()
            })
            .expect("a thread starts");
        Self { tx, card, metrics }
    }

    /// Queues `work`; a full queue is a 503 with `Retry-After`.
    pub fn submit(&self, work: Work) -> Result<(), ApiError> {
        match self.tx.try_send(work) {
            Ok(()) => {
                self.metrics
                    .queue_depth
                    .get_or_create(&ModelLabel {
                        model: self.card.name.clone(),
                    })
                    .inc();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("model `{}` has a full queue: retry shortly", self.card.name),
                retry_after: Some(1),
            }),
            Err(TrySendError::Disconnected(_)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the model's worker has stopped",
            )),
        }
    }
}

struct Runner {
    model: Loaded,
    rx: Receiver<Work>,
    batching: Batching,
    metrics: Arc<Metrics>,
    label: ModelLabel,
    device: Device,
    backlog: VecDeque<Work>,
}

impl Runner {
    fn next(&mut self, wait: Option<Duration>) -> Option<Work> {
        if let Some(w) = self.backlog.pop_front() {
            return Some(w);
        }
        let got = match wait {
            None => self.rx.recv().ok(),
            Some(d) => self.rx.recv_timeout(d).ok(),
        };
        if got.is_some() {
            self.metrics.queue_depth.get_or_create(&self.label).dec();
        }
        got
    }

    fn run(mut self) {
        // A served model's weights never change: lay each recurrent weight out once.
        crate::kernels::kept::keep_laid_out_weights(true);
        while let Some(work) = self.next(None) {
            if work.gone() {
                continue;
            }
            match work {
                Work::Classify { texts, reply } => self.classify(texts, reply),
                Work::Score { text, top, reply } => {
                    let r = self.guarded(|me| me.score(&text, top));
                    let _ = reply.send(r);
                }
                Work::Generate {
                    prompt,
                    sampling,
                    reply,
                } => {
                    let r = self.guarded(|me| me.generate(&prompt, &sampling));
                    let _ = reply.send(r);
                }
            }
        }
    }

    /// Runs `f`; an error or a panic becomes the answer's message.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> crate::error::Result<T>,
    ) -> Result<T, ApiError> {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(r) => r.map_err(|e| ApiError::bad(e.to_string())),
            Err(_) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the model failed on this request (an internal error; the server goes on)",
            )),
        }
    }

    /// The first request's texts and those of every classification request that arrives within
    /// the wait, up to the batch's limits, run together.
    fn classify(&mut self, texts: Vec<String>, reply: Reply<Vec<Prediction>>) {
        let tokens = |t: &[String]| {
            t.iter()
                .map(|d| crate::text::tokenize(d).len())
                .sum::<usize>()
        };
        let mut n_tokens = tokens(&texts);
        let mut group = vec![(texts, reply)];
        let until = Instant::now() + self.batching.max_wait;
        let docs = |g: &Vec<(Vec<String>, _)>| g.iter().map(|(t, _)| t.len()).sum::<usize>();
        while docs(&group) < self.batching.max_docs && n_tokens < self.batching.max_tokens {
            let left = until.saturating_duration_since(Instant::now());
            match self.next(Some(left)) {
                Some(Work::Classify { texts, reply }) if !reply.is_closed() => {
                    n_tokens += tokens(&texts);
                    group.push((texts, reply));
                }
                Some(w) if !w.gone() => {
                    self.backlog.push_back(w);
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        let all: Vec<String> = group.iter().flat_map(|(t, _)| t.iter().cloned()).collect();
        self.metrics
            .batch_documents
            .get_or_create(&self.label)
            .observe(all.len() as f64);
        let max_docs = self.batching.max_docs;
        let result = self.guarded(|me| match &mut me.model {
            Loaded::Classifier(c) => c.predict(&all, max_docs),
            Loaded::Lm(_) => unreachable!("routes send classification to classifiers only"),
        });
        if result.is_ok() {
            self.metrics
                .documents
                .get_or_create(&self.label)
                .inc_by(all.len() as u64);
            self.metrics
                .tokens
                .get_or_create(&self.label)
                .inc_by(n_tokens as u64);
        }
        let mut at = 0;
        for (texts, reply) in group {
            let answer = result
                .as_ref()
                .map(|p| p[at..at + texts.len()].to_vec())
                .map_err(Clone::clone);
            at += texts.len();
            let _ = reply.send(answer);
        }
    }

    fn score(
        &mut self,
        text: &str,
        top: usize,
    ) -> crate::error::Result<(TokenScores, Vec<(String, f64)>)> {
        let Loaded::Lm(lm) = &mut self.model else {
            unreachable!("routes send scoring to language models only")
        };
        let s = score(lm, text, &self.device)?;
        let next = s.top_next(top, lm);
        self.metrics.documents.get_or_create(&self.label).inc();
        self.metrics
            .tokens
            .get_or_create(&self.label)
            .inc_by(s.ids.len() as u64);
        Ok((s, next))
    }

    fn generate(&mut self, prompt: &str, sampling: &Sampling) -> crate::error::Result<Vec<String>> {
        let Loaded::Lm(lm) = &mut self.model else {
            unreachable!("routes send generation to language models only")
        };
        let out = generate(lm, prompt, sampling, &self.device, |_| ())?;
        self.metrics.documents.get_or_create(&self.label).inc();
        self.metrics
            .tokens
            .get_or_create(&self.label)
            .inc_by(out.len() as u64);
        Ok(out)
    }
}
