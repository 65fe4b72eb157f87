//! Fuzzing the JSON routes of a real running server (proptest, bounded in cases): whatever the
//! body — random bytes, random JSON, the right shape with wild values — the answer is a 200 or a
//! 4xx with a message, never a 5xx, and the server keeps answering.

mod serve_support;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use serve_support::{Server, export_dir};

const ROUTES: [&str; 4] = ["/v1/classify", "/v1/score", "/v1/generate", "/v1/tokenize"];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            Just("texts".to_string()),
            Just("text".to_string()),
            Just("prompt".to_string()),
            Just("tokens".to_string()),
            Just("model".to_string()),
            Just("top_k".to_string()),
            ".{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn well_shaped() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        ".{0,200}",
        "\\PC{0,60}",
        Just(String::new()),
        Just("xxbos xxunk xxpad".to_string())
    ];
    (
        prop::collection::vec(text.clone(), 0..8),
        text,
        prop_oneof![0usize..30, Just(usize::MAX), Just(1001usize)],
        prop_oneof![-1.0f64..3.0, Just(1e-300), Just(1e300)],
        prop_oneof![0usize..50, Just(usize::MAX)],
        any::<u64>(),
    )
        .prop_map(|(texts, t, tokens, temperature, top_k, seed)| {
            json!({ "texts": texts, "text": t, "prompt": t, "tokens": tokens,
                    "temperature": temperature, "top_k": top_k, "seed": seed })
        })
}

fn check(server: &Server, route: &str, body: &[u8]) -> Result<(), TestCaseError> {
    let (status, answer, _) = server.post_raw(route, body);
    prop_assert!(
        status == 200 || (400..500).contains(&status),
        "{route} {}: {status} {answer}",
        String::from_utf8_lossy(body)
    );
    if status != 200 {
        prop_assert!(answer["error"].is_string(), "{answer}");
    }
    Ok(())
}

/// One server for every case (one test, so the server is stopped when it ends).
#[test]
fn no_body_makes_a_json_route_fail_or_the_server_stop() {
    let clas = export_dir().join("export.pkl");
    let lm = export_dir().join("lm_export.pkl");
    let server = &Server::start(&[
        "--model",
        clas.to_str().unwrap(),
        "--model",
        lm.to_str().unwrap(),
        "--max-body",
        "65536",
    ]);
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let route = 0..ROUTES.len();
    let mut runner = TestRunner::new(config.clone());
    runner
        .run(
            &(route.clone(), prop::collection::vec(any::<u8>(), 0..300)),
            |(r, body)| check(server, ROUTES[r], &body),
        )
        .unwrap();
    let mut runner = TestRunner::new(config.clone());
    runner
        .run(&(route.clone(), any_json()), |(r, body)| {
            check(server, ROUTES[r], body.to_string().as_bytes())
        })
        .unwrap();
    let mut runner = TestRunner::new(config);
    runner
        .run(&(route, well_shaped()), |(r, body)| {
            // Each route takes its own fields: the others are dropped so the values themselves are tested.
            let keep: &[&str] = match r {
                0 | 3 => &["texts"],
                1 => &["text", "top_k"],
                _ => &["prompt", "tokens", "temperature", "top_k", "seed"],
            };
            let body: serde_json::Map<String, Value> = body
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            check(
                server,
                ROUTES[r],
                Value::Object(body).to_string().as_bytes(),
            )
        })
        .unwrap();
    let (status, _) = server.post("/v1/classify", &json!({ "texts": ["a fine film"] }));
    assert_eq!(status, 200, "the server still answers after the fuzzing");
}
