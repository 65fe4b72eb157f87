//! fastai's vocabularies: `make_vocab`'s rules against fastai itself, and vocabulary pickles
//! both ways. The vectors were recorded with fastai 2.8.12 by tests/vectors/make_fastai_vocab.py.

use std::path::PathBuf;

use awd::data::Vocab;
use awd::data::fastai_vocab::{make_vocab, read_pickle, write_pickle};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(vectors().join(name)).unwrap()).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Counts, ties in first-seen order, `min_freq`, the `max_vocab` cut, specials first and the
/// `xxfake` padding (8 of them when the length is already a multiple of 8), as fastai builds them.
#[test]
fn make_vocab_is_fastais() {
    let v = json("fastai_vocab.json");
    let docs: Vec<Vec<String>> = serde_json::from_value(v["docs"].clone()).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let (min_freq, max_vocab) = (
            case["min_freq"].as_u64().unwrap() as usize,
            case["max_vocab"].as_u64().unwrap() as usize,
        );
        let got = make_vocab(
            docs.iter().map(|d| d.iter().map(String::as_str)),
            min_freq,
            max_vocab,
        );
        assert_eq!(
            got.itos(),
            strings(&case["itos"]),
            "min_freq {min_freq}, max_vocab {max_vocab}"
        );
    }
}

/// fastai's padding is not a token: `xxfake` in a text reads as unknown, as in fastai.
#[test]
fn padding_entries_get_no_id() {
    let v = make_vocab([["a", "a", "a"]].iter().map(|d| d.iter().copied()), 1, 100);
    assert_eq!(v.len() % 8, 0);
    assert_eq!(v.id("xxfake"), 0);
    assert_eq!(v.token(v.id("a")), "a");
}

/// Pickles of protocols 2 to 5 (as Python writes them) read; awd's pickle reads back the same
/// list (and, checked with Python 3.11 when recorded, `pickle.load` reads it too).
#[test]
fn vocabulary_pickles_round_trip() {
    let want = strings(&json("itos_small.json"));
    for p in 2..=5 {
        let got = read_pickle(&vectors().join(format!("itos_p{p}.pkl"))).unwrap();
        assert_eq!(got.itos(), want, "protocol {p}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("itos.pkl");
    write_pickle(&path, &Vocab::from_itos(want.clone())).unwrap();
    assert_eq!(read_pickle(&path).unwrap().itos(), want);
}

/// Anything but a list of str is refused with the file named.
#[test]
fn other_pickles_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>); 3] = [
        // pickle.dumps({'a': 1}, protocol=2)
        (
            "dict.pkl",
            b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.".to_vec(),
        ),
        // pickle.dumps([1, 2], protocol=2)
        ("ints.pkl", b"\x80\x02]q\x00(K\x01K\x02e.".to_vec()),
        ("text.pkl", b"not a pickle at all".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = read_pickle(&path).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("list of str"), "{err}");
    }
}

/// The vocabulary a fastai pretrained model comes with (`$AWD_ULMFIT`, default
/// `../shared/testdata/ulmfit`): fastai's specials first, padded to a multiple of 8.
#[test]
fn a_fastai_pretrained_vocabulary_reads() {
    let dir = std::env::var_os("AWD_ULMFIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/ulmfit")
        });
    let vocab = read_pickle(&dir.join("itos.pkl")).unwrap();
    assert_eq!(vocab.len() % 8, 0);
    assert_eq!(&vocab.itos()[..3], ["xxunk", "xxpad", "xxbos"]);
    assert_eq!(vocab.id("xxmaj"), 8);
}
