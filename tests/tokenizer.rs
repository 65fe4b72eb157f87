//! fastai's tokenization (its rules + spaCy's English tokenizer) against fastai 2.8.12 + spaCy 3.8's
//! own output on `tokens.jsonl` (`$AWD_ULMFIT`, default `../shared/testdata/ulmfit`).

use std::path::PathBuf;

fn ulmfit() -> PathBuf {
    let dir = std::env::var_os("AWD_ULMFIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/ulmfit")
        });
    assert!(dir.is_dir(), "{} not found (set AWD_ULMFIT)", dir.display());
    dir
}

#[derive(serde::Deserialize)]
struct Row {
    text: String,
    tokens: Vec<String>,
}

/// Texts whose tokens differ from fastai's, each with the reason; any other difference fails.
const KNOWN: &[(&str, &str)] = &[];

/// At least 99.5% of the texts tokenize exactly as fastai does, and every text that does not is a
/// known difference (listed above with its reason).
#[test]
fn tokens_match_fastai() {
    let path = ulmfit().join("tokens.jsonl");
    let rows: Vec<Row> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty());
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let ours = awd::text::tokenize_all(&texts);
    let mut differ = Vec::new();
    for (row, got) in rows.iter().zip(&ours) {
        if *got != row.tokens {
            let at = got
                .iter()
                .zip(&row.tokens)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(row.tokens.len()));
            let lo = at.saturating_sub(3);
            eprintln!(
                "differs at token {at}: awd {:?} fastai {:?}",
                &got[lo..(at + 4).min(got.len())],
                &row.tokens[lo..(at + 4).min(row.tokens.len())]
            );
            differ.push(row.text.clone());
        }
    }
    let same = rows.len() - differ.len();
    eprintln!("{same} of {} texts tokenize as fastai's", rows.len());
    assert!(
        same as f64 >= 0.995 * rows.len() as f64,
        "{} texts differ",
        differ.len()
    );
    for text in &differ {
        let prefix: String = text.chars().take(60).collect();
        assert!(
            KNOWN.iter().any(|(start, _)| text.starts_with(start)),
            "an unknown difference: {prefix:?}"
        );
    }
}
