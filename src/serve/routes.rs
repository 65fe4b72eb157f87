//! The HTTP routes: JSON in, JSON out.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::App;
use super::guard::{ApiError, parse};
use super::worker::{Reply, Work, Worker};
use crate::jobs::generate::Sampling;

type Body = Result<Bytes, BytesRejection>;
type Answer = Result<Json<Value>, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextsRequest {
    texts: Vec<String>,
    model: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreRequest {
    text: String,
    model: Option<String>,
    /// Most likely next tokens to list.
    #[serde(default = "ten")]
    top_k: usize,
}

fn ten() -> usize {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateRequest {
    #[serde(default)]
    prompt: String,
    model: Option<String>,
    #[serde(default = "fifty")]
    tokens: usize,
    #[serde(default = "one")]
    temperature: f64,
    #[serde(default)]
    top_k: usize,
    #[serde(default)]
    seed: u64,
}

fn fifty() -> usize {
    50
}

fn one() -> f64 {
    1.0
}

#[derive(Serialize)]
struct ClassPrediction {
    label: Option<String>,
    probability: f32,
    labels: Vec<String>,
    probabilities: serde_json::Map<String, Value>,
}

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, kind)], app.metrics.render())
}

pub async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    let cards: Vec<_> = app.workers.iter().map(|w| &w.card).collect();
    Json(json!({ "models": cards }))
}

pub async fn classify(State(app): State<Arc<App>>, body: Body) -> Answer {
    let req: TextsRequest = parse(body)?;
    app.check_texts(&req.texts)?;
    let worker = app.pick(req.model.as_deref(), "classifier")?;
    let predictions = ask(&app, worker, |reply| Work::Classify {
        texts: req.texts,
        reply,
    })
    .await?;
    let classes = &worker.card.classes;
    let out: Vec<ClassPrediction> = predictions
        .into_iter()
        .map(|p| {
            let label = (!worker.card.multi_label).then(|| p.labels[0].clone());
            let best = p.probabilities.iter().fold(0f32, |m, &x| m.max(x));
            let probabilities = classes
                .iter()
                .cloned()
                .zip(p.probabilities.iter().map(|&x| json!(x)))
                .collect();
            ClassPrediction {
                label,
                probability: best,
                labels: p.labels,
                probabilities,
            }
        })
        .collect();
    Ok(Json(
        json!({ "model": worker.card.name, "classes": classes, "predictions": out }),
    ))
}

pub async fn score(State(app): State<Arc<App>>, body: Body) -> Answer {
    let req: ScoreRequest = parse(body)?;
    app.check_texts(std::slice::from_ref(&req.text))?;
    if req.top_k > 1000 {
        return Err(ApiError::bad("`top_k`: at most 1000"));
    }
    let worker = app.pick(req.model.as_deref(), "language_model")?;
    let top = req.top_k;
    let (s, next) = ask(&app, worker, |reply| Work::Score {
        text: req.text,
        top,
        reply,
    })
    .await?;
    Ok(Json(json!({
        "model": worker.card.name,
        "tokens": s.tokens,
        "ids": s.ids,
        "logprobs": s.logprobs,
        "perplexity": s.perplexity(),
        "next": next,
    })))
}

pub async fn generate(State(app): State<Arc<App>>, body: Body) -> Answer {
    let req: GenerateRequest = parse(body)?;
    app.check_texts(std::slice::from_ref(&req.prompt))?;
    if req.tokens == 0 || req.tokens > app.limits.max_generate {
        return Err(ApiError::bad(format!(
            "`tokens`: from 1 to {}",
            app.limits.max_generate
        )));
    }
    if !(req.temperature.is_finite() && req.temperature > 0.0) {
        return Err(ApiError::bad("`temperature`: a number above 0"));
    }
    let worker = app.pick(req.model.as_deref(), "language_model")?;
    let sampling = Sampling {
        tokens: req.tokens,
        temperature: req.temperature,
        top_k: req.top_k,
        seed: req.seed,
    };
    let prompt = req.prompt;
    let tokens = ask(&app, worker, |reply| Work::Generate {
        prompt,
        sampling,
        reply,
    })
    .await?;
    Ok(Json(
        json!({ "model": worker.card.name, "text": tokens.join(" "), "tokens": tokens }),
    ))
}

pub async fn tokenize(State(app): State<Arc<App>>, body: Body) -> Answer {
    let req: TextsRequest = parse(body)?;
    app.check_texts(&req.texts)?;
    let vocab = match req.model.as_deref() {
        None => None,
        Some(name) => Some(app.vocabs.get(name).ok_or_else(|| app.unknown(name))?),
    };
    let texts = req.texts;
    let tokens = tokio::task::spawn_blocking(move || crate::jobs::tokenize(&texts))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "tokenizing failed"))?;
    let mut out = json!({ "tokens": tokens });
    if let Some(v) = vocab {
        let ids: Vec<Vec<u32>> = tokens
            .iter()
            .map(|t| t.iter().map(|w| v.id(w)).collect())
            .collect();
        out["ids"] = json!(ids);
    }
    Ok(Json(out))
}

/// Queues work on `worker` and waits for its answer, at most the request deadline.
async fn ask<T>(
    app: &App,
    worker: &Worker,
    make: impl FnOnce(Reply<T>) -> Work,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    worker.submit(make(tx))?;
    match tokio::time::timeout(app.limits.deadline, rx).await {
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "no answer within the deadline ({} ms)",
                app.limits.deadline.as_millis()
            ),
        )),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the model's worker stopped",
        )),
        Ok(Ok(answer)) => answer,
    }
}
