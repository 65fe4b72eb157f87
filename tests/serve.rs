//! `awd serve` against a real running server over HTTP on 127.0.0.1: fastai's probabilities for
//! an `export.pkl`, the same alone and among 63 concurrent requests; the language model export's
//! scores and reproducible generation; and each way a request can be refused.

mod serve_support;

use serde_json::{Value, json};
use serve_support::{Server, export_dir};

fn probes() -> Vec<Value> {
    let text = std::fs::read_to_string(export_dir().join("probes.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn both() -> Server {
    let clas = export_dir().join("export.pkl");
    let lm = export_dir().join("lm_export.pkl");
    Server::start(&[
        "--model",
        &format!("reviews={}", clas.display()),
        "--model",
        &format!("lm={}", lm.display()),
    ])
}

fn check_probs(got: &Value, probe: &Value, what: &str) {
    let want = probe["probs"].as_array().unwrap();
    assert_eq!(got["label"], probe["label"], "{what}");
    for (i, class) in ["negative", "positive"].iter().enumerate() {
        let (g, w) = (
            got["probabilities"][class].as_f64().unwrap(),
            want[i].as_f64().unwrap(),
        );
        assert!((g - w).abs() < 1e-4, "{what}: {class} {g} vs fastai {w}");
    }
}

#[test]
fn classify_answers_fastais_probabilities_alone_and_among_63_concurrent_requests() {
    let server = &both();
    let probes = probes();
    let texts: Vec<&str> = probes.iter().map(|p| p["text"].as_str().unwrap()).collect();
    // One request with every text.
    let (status, all) = server.post("/v1/classify", &json!({ "texts": texts }));
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["classes"], json!(["negative", "positive"]));
    for (i, p) in probes.iter().enumerate() {
        check_probs(
            &all["predictions"][i],
            p,
            &format!("text {i} in one request"),
        );
    }
    // Each text alone, then all 64 at once from 64 threads (batched by the server).
    let (_, alone) = server.post("/v1/classify", &json!({ "texts": [texts[0]] }));
    check_probs(&alone["predictions"][0], &probes[0], "text 0 alone");
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .iter()
            .map(|t| {
                s.spawn(move || {
                    server.post("/v1/classify", &json!({ "texts": [t], "model": "reviews" }))
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let (status, answer) = h.join().unwrap();
            assert_eq!(status, 200, "{answer}");
            check_probs(
                &answer["predictions"][0],
                &probes[i],
                &format!("text {i} concurrently"),
            );
        }
    });
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("awd_requests_total{route=\"/v1/classify\",status=\"200\"} 66"),
        "{metrics}"
    );
    assert!(metrics.contains("awd_batch_documents_bucket"), "{metrics}");
    let batches = metrics
        .lines()
        .find(|l| l.starts_with("awd_batch_documents_count"))
        .unwrap();
    let n: f64 = batches.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        n < 66.0,
        "64 concurrent requests were batched together: {batches}"
    );
}

#[test]
fn the_language_model_export_scores_generates_and_tokenizes() {
    let server = both();
    let text = std::fs::read_to_string(export_dir().join("lm_probes.jsonl")).unwrap();
    for line in text.lines() {
        let p: Value = serde_json::from_str(line).unwrap();
        let (status, s) = server.post("/v1/score", &json!({ "text": p["prompt"] }));
        assert_eq!(status, 200, "{s}");
        assert_eq!(s["ids"], p["ids"]);
        for (got, want) in s["next"]
            .as_array()
            .unwrap()
            .iter()
            .zip(p["top"].as_array().unwrap())
            .take(3)
        {
            assert_eq!(got[0], want[0]);
            assert!(
                (got[1].as_f64().unwrap() - want[1].as_f64().unwrap()).abs() < 1e-4,
                "{got} vs {want}"
            );
        }
        assert!(s["perplexity"].as_f64().unwrap() >= 1.0);
    }
    let ask = json!({ "prompt": "The film is", "tokens": 12, "seed": 7, "top_k": 20 });
    let (status, a) = server.post("/v1/generate", &ask);
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["tokens"].as_array().unwrap().len(), 12);
    assert_eq!(
        server.post("/v1/generate", &ask).1,
        a,
        "the same seed gives the same text"
    );
    let (_, t) = server.post(
        "/v1/tokenize",
        &json!({ "texts": ["Hello WORLD"], "model": "lm" }),
    );
    assert_eq!(
        t["tokens"],
        json!([["xxbos", "xxmaj", "hello", "xxup", "world"]])
    );
    assert_eq!(t["ids"][0][0], 2);
    let (_, models) = server.get("/v1/models");
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["models"][0]["kind"], "classifier");
    assert_eq!(models["models"][1]["kind"], "language_model");
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn bad_requests_get_a_400_naming_the_field_and_the_server_goes_on() {
    let server = Server::start(&[
        "--model",
        export_dir().join("export.pkl").to_str().unwrap(),
        "--max-texts",
        "4",
        "--max-body",
        "2000",
    ]);
    let cases: [(&[u8], &str); 8] = [
        (b"{\"texts\": [\"a\"", "not valid JSON"),
        (b"{\"texts\": 1}", "`texts`"),
        (b"{\"texts\": [\"a\", 2]}", "`texts[1]`"),
        (b"{\"texts\": []}", "one text at least"),
        (b"{\"texts\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", "at most 4"),
        (b"{\"texts\": [\"a\"], \"colour\": 1}", "colour"),
        (
            b"{\"texts\": [\"a\"], \"model\": \"nope\"}",
            "no model is named `nope`",
        ),
        (b"[1, 2]", "not the JSON"),
    ];
    for (body, named) in cases {
        let (status, answer, _) = server.post_raw("/v1/classify", body);
        assert_eq!(status, 400, "{}: {answer}", String::from_utf8_lossy(body));
        assert!(
            answer["error"].as_str().unwrap().contains(named),
            "{answer}"
        );
    }
    let (status, answer) = server.post("/v1/generate", &json!({ "prompt": "x" }));
    assert_eq!(status, 400, "a classifier does not generate: {answer}");
    let big = json!({ "texts": ["word ".repeat(1000)] }).to_string();
    assert_eq!(server.post_raw("/v1/classify", big.as_bytes()).0, 413);
    assert_eq!(
        server
            .post("/v1/classify", &json!({ "texts": ["still here"] }))
            .0,
        200
    );
}

#[test]
fn a_token_is_required_when_set_and_healthz_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret\n").unwrap();
    let mut server = Server::start(&[
        "--model",
        export_dir().join("export.pkl").to_str().unwrap(),
        "--token-file",
        file.to_str().unwrap(),
    ]);
    let ask = json!({ "texts": ["fine"] });
    assert_eq!(server.post("/v1/classify", &ask).0, 401);
    assert_eq!(server.get("/metrics").0, 401);
    assert_eq!(server.get("/healthz").0, 200);
    server.token = Some("wrong".into());
    assert_eq!(server.post("/v1/classify", &ask).0, 401);
    server.token = Some("s3cret".into());
    assert_eq!(server.post("/v1/classify", &ask).0, 200);
}

#[test]
fn a_full_queue_is_a_503_with_retry_after_and_a_late_answer_a_504() {
    let model = export_dir().join("export.pkl");
    let server = Server::start(&[
        "--model",
        model.to_str().unwrap(),
        "--queue",
        "1",
        "--max-batch",
        "1",
    ]);
    let long = "a rather long review of a film that goes on and on. ".repeat(200);
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    let (st, _, retry) = server.post_raw(
                        "/v1/classify",
                        json!({ "texts": [long] }).to_string().as_bytes(),
                    );
                    (st, retry)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().any(|(s, _)| *s == 200), "{statuses:?}");
    let full: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!full.is_empty(), "{statuses:?}");
    assert!(full.iter().all(|(_, r)| r.as_deref() == Some("1")));
    drop(server);
    let server = Server::start(&["--model", model.to_str().unwrap(), "--deadline-ms", "1"]);
    let (status, answer) = server.post("/v1/classify", &json!({ "texts": [long] }));
    assert_eq!(status, 504, "{answer}");
    assert_eq!(server.get("/healthz").0, 200);
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_what_is_in_flight_then_exits_0() {
    let mut server = Server::start(&["--model", export_dir().join("export.pkl").to_str().unwrap()]);
    let long = "a rather long review of a film that goes on and on. ".repeat(300);
    let texts = vec![long; 16];
    std::thread::scope(|s| {
        let h = s.spawn(|| server.post("/v1/classify", &json!({ "texts": texts })));
        std::thread::sleep(std::time::Duration::from_millis(300));
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
        let (status, answer) = h.join().unwrap();
        assert_eq!(status, 200, "{answer}");
    });
    let code = server.child.wait().unwrap();
    assert_eq!(code.code(), Some(0));
}
