//! fastai's artifacts against fastai itself: vocabularies (`make_vocab`'s rules, pickles both
//! ways), `match_embeds`, and the encoder file. The vectors under tests/vectors were recorded with
//! fastai 2.8.12 by the scripts beside them.

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

/// fastai's `match_embeds` on a case with new tokens and padding (recorded with fastai 2.8.12 by
/// tests/vectors/make_match_embeds.py): rows and biases copied, new tokens at the mean (1e-6),
/// the embedding's aliases set alike.
#[test]
fn match_embeds_is_fastais() {
    use awd::checkpoint::fastai::match_embeds;
    use awd::params::HostTensor;
    let v = json("match_embeds.json");
    let matrix = |key: &str| -> (Vec<usize>, Vec<f32>) {
        let rows: Vec<Vec<f32>> = serde_json::from_value(v[key].clone()).unwrap();
        (vec![rows.len(), rows[0].len()], rows.concat())
    };
    let (shape, values) = matrix("old_emb");
    let emb = HostTensor::new(shape, values);
    let bias: Vec<f32> = serde_json::from_value(v["old_bias"].clone()).unwrap();
    let mut tensors = std::collections::BTreeMap::from([
        ("0.encoder.weight".to_string(), emb.clone()),
        ("0.encoder_dp.emb.weight".to_string(), emb.clone()),
        ("1.decoder.weight".to_string(), emb),
        (
            "1.decoder.bias".to_string(),
            HostTensor::new(vec![bias.len()], bias),
        ),
    ]);
    let (old, new) = (strings(&v["old_vocab"]), strings(&v["new_vocab"]));
    match_embeds(&mut tensors, &old, &new).unwrap();
    let (shape, want) = matrix("new_emb");
    for key in [
        "0.encoder.weight",
        "0.encoder_dp.emb.weight",
        "1.decoder.weight",
    ] {
        assert_eq!(tensors[key].shape, shape, "{key}");
        for (g, w) in tensors[key].values.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6, "{key}: {g} vs {w}");
        }
    }
    let want: Vec<f32> = serde_json::from_value(v["new_bias"].clone()).unwrap();
    for (g, w) in tensors["1.decoder.bias"].values.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6, "bias: {g} vs {w}");
    }
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    assert_eq!(keys, strings(&v["keys"]).iter().collect::<Vec<_>>());
    // Weights that do not fit the vocabulary they came with are refused, saying so.
    let err = match_embeds(&mut tensors, &old, &new)
        .unwrap_err()
        .to_string();
    assert!(err.contains("12 rows") && err.contains("8 tokens"), "{err}");
}

/// The encoder file has the names and shapes of fastai's `save_encoder` state dict (recorded
/// with fastai 2.8.12 by tests/vectors/make_encoder_keys.py), and reads back as written.
#[test]
fn the_encoder_state_dict_is_fastais() {
    use awd::checkpoint::fastai::{encoder_state_dict, read_tensors, write_tensors};
    use awd::model::{AwdLstmConfig, LanguageModel};
    let v = json("encoder_keys.json");
    let c = &v["config"];
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let config = AwdLstmConfig {
        vocab_size: n("vocab_sz"),
        emb_size: n("emb_sz"),
        hidden_size: n("n_hid"),
        n_layers: n("n_layers"),
        ..AwdLstmConfig::default()
    };
    let model = LanguageModel::new(&config, &awd::Masks::default(), &awd::device::cpu()).unwrap();
    let enc = encoder_state_dict(&model);
    let want: std::collections::BTreeMap<String, Vec<usize>> =
        serde_json::from_value(v["tensors"].clone()).unwrap();
    let got: std::collections::BTreeMap<String, Vec<usize>> = enc
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    assert_eq!(got, want);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("encoder.pth");
    write_tensors(&path, &enc).unwrap();
    assert_eq!(read_tensors(&path).unwrap(), enc);
}
