//! A load generator for `POST /v1/classify` (awd's server, or `bench/fastai_serve.py` speaking
//! the same JSON): CONCURRENCY clients each send one review a request, back to back, until
//! REQUESTS have been answered; prints documents/s, p50 and p99 latency as one JSON line.
//! Loopback only; bounded in count and time.
//!
//! `cargo run --release --example serve_load -- URL CSV CONCURRENCY REQUESTS`

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, csv, concurrency, requests] = &args[..] else {
        eprintln!("usage: serve_load URL CSV CONCURRENCY REQUESTS");
        std::process::exit(2);
    };
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "load goes to 127.0.0.1 only"
    );
    let (concurrency, requests): (usize, usize) =
        (concurrency.parse().unwrap(), requests.parse().unwrap());
    let mut reader = csv::Reader::from_path(csv).expect("the CSV opens");
    let col = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "text")
        .expect("a text column");
    let texts: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[col].to_string())
        .collect();
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(requests));
    let failures = AtomicUsize::new(0);
    let give_up = Instant::now() + Duration::from_secs(600);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..concurrency {
            s.spawn(|| {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build()
                    .into();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests || Instant::now() > give_up {
                        break;
                    }
                    let body = serde_json::json!({ "texts": [texts[i % texts.len()]] }).to_string();
                    let t = Instant::now();
                    let req = agent.post(format!("{url}/v1/classify"));
                    let answered = req
                        .header("Content-Type", "application/json")
                        .send(&body)
                        .ok()
                        .and_then(|mut r| r.body_mut().read_to_string().ok());
                    match answered {
                        Some(_) => latencies.lock().unwrap().push(t.elapsed().as_secs_f64()),
                        None => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let mut l = latencies.into_inner().unwrap();
    l.sort_by(f64::total_cmp);
    let q = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{}",
        serde_json::json!({
            "concurrency": concurrency, "answered": l.len(), "failed": failures.into_inner(),
            "docs_per_s": l.len() as f64 / wall, "p50_ms": 1e3 * q(0.50), "p99_ms": 1e3 * q(0.99),
        })
    );
}
