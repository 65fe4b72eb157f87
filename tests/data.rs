//! Corpora, vocabularies and batching.

use awd::data::batches::{Rows, WindowLengths};
use awd::data::corpus::{Level, read_tokens};
use awd::data::{Dataset, DocOptions, Source, Specials, Vocab, VocabRules};
use awd::device;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn word_level_adds_eos_at_every_line_end_and_keeps_unk() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "t.txt", " the cat <unk> sat \n\n a dog\n");
    assert_eq!(
        read_tokens(&p, Level::Word).unwrap(),
        [
            "the", "cat", "<unk>", "sat", "<eos>", "<eos>", "a", "dog", "<eos>"
        ]
    );
    let chars = read_tokens(&p, Level::Char).unwrap();
    assert_eq!(
        chars.len(),
        " the cat <unk> sat \n\n a dog\n".chars().count()
    );
}

#[test]
fn vocabulary_orders_by_count_and_respects_min_freq_and_max_vocab() {
    let tokens = ["b", "a", "a", "c", "c", "c", "<unk>", "d"];
    let v = Vocab::build(tokens, Specials::Ptb, 1, 100).unwrap();
    assert_eq!(v.itos(), ["<unk>", "<pad>", "<eos>", "c", "a", "b", "d"]);
    assert_eq!(v.id("<unk>"), 0);
    assert_eq!(v.id("never seen"), 0);
    let v = Vocab::build(tokens, Specials::Fastai, 2, 100).unwrap();
    assert_eq!(&v.itos()[9..], ["c", "a"]);
    assert_eq!(v.itos()[1], "xxpad");
    let v = Vocab::build(tokens, Specials::Ptb, 1, 4).unwrap();
    assert_eq!(v.len(), 4);
    assert!(Vocab::build(tokens, Specials::Ptb, 1, 2).is_err());
}

fn docs(valid_fraction: f64) -> DocOptions<'static> {
    DocOptions {
        valid_fraction,
        text_col: "text",
        seed: 0,
    }
}

fn ptb_rules() -> VocabRules {
    VocabRules {
        specials: Specials::Ptb,
        min_freq: 1,
        max_vocab: 100,
    }
}

/// Documents: a CSV's `is_valid` column splits its rows (order kept), a CSV without one and a
/// directory of .txt files split a seeded random share; at the fastai level each document starts
/// with `xxbos` and the vocabulary counts every document (fastai's rule), validation ones too.
#[test]
fn documents_from_csv_and_directories_split_as_fastai_does() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        &dir,
        "d.csv",
        "label,text,is_valid\na,Hello there,False\nb,\"Two, words\",True\na,Hello again,False\n",
    );
    let rules = VocabRules {
        specials: Specials::Fastai,
        min_freq: 1,
        max_vocab: 100,
    };
    let d = Dataset::from_source(
        &Source::from_path(&csv, &docs(0.5)).unwrap(),
        Level::Fastai,
        rules,
    )
    .unwrap();
    let words = |ids: &[u32]| {
        ids.iter()
            .map(|&i| d.vocab.token(i).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(&d.train),
        [
            "xxbos", "xxmaj", "hello", "there", "xxbos", "xxmaj", "hello", "again"
        ]
    );
    assert_eq!(words(&d.valid), ["xxbos", "xxmaj", "two", ",", "words"]);
    assert_eq!(d.vocab.len() % 8, 0, "fastai pads to a multiple of 8");

    let bare = write(&dir, "bare.csv", "text\none\ntwo\nthree\nfour\n");
    let Source::Docs {
        docs: all,
        is_valid,
        given,
        ..
    } = Source::from_path(&bare, &docs(0.25)).unwrap()
    else {
        panic!("a CSV is documents")
    };
    assert_eq!(
        (all.len(), is_valid.iter().filter(|&&v| v).count(), given),
        (4, 1, false)
    );
    let again = Source::from_path(&bare, &docs(0.25)).unwrap();
    assert!(
        matches!(again, Source::Docs { is_valid: ref v, .. } if *v == is_valid),
        "seeded"
    );

    let txt = tempfile::tempdir().unwrap();
    for (i, t) in ["first doc", "second doc", "third doc"].iter().enumerate() {
        write(&txt, &format!("{i}.txt"), t);
    }
    let Source::Docs { docs: all, .. } = Source::from_path(txt.path(), &docs(0.3)).unwrap() else {
        panic!("a directory of .txt files is documents")
    };
    assert_eq!(all, ["first doc", "second doc", "third doc"]);
    let err = Source::from_path(
        &csv,
        &DocOptions {
            text_col: "body",
            ..docs(0.1)
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("no column `body`"), "{err}");
}

/// A backward model's data (fastai's `reverse_text`): each document's tokens reversed in place,
/// `xxbos` last, documents in their order.
#[test]
fn backward_data_reverses_each_document() {
    use awd::data::dataset::reverse_documents;
    let mut ids = [2, 10, 11, 12, 2, 20, 2];
    reverse_documents(&mut ids, 2);
    assert_eq!(ids, [12, 11, 10, 2, 20, 2, 2]);

    let dir = tempfile::tempdir().unwrap();
    let text = write(&dir, "d.txt", "Hello there\nTwo words here\nHello again\n");
    let rules = VocabRules {
        specials: Specials::Fastai,
        min_freq: 1,
        max_vocab: 100,
    };
    let source = Source::from_path(&text, &docs(0.3)).unwrap();
    let forward = Dataset::from_source(&source, Level::Fastai, rules).unwrap();
    let mut backward = forward.clone();
    backward.reverse_documents();
    let words = |ids: &[u32]| {
        ids.iter()
            .map(|&i| forward.vocab.token(i))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        words(&forward.train),
        "xxbos xxmaj hello there xxbos xxmaj two words here"
    );
    assert_eq!(words(&forward.valid), "xxbos xxmaj hello xxunk");
    assert_eq!(
        words(&backward.train),
        "there hello xxmaj xxbos here words two xxmaj xxbos"
    );
    assert_eq!(words(&backward.valid), "xxunk hello xxmaj xxbos");
}

#[test]
fn a_single_file_holds_out_its_tail_and_a_directory_gives_its_splits() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "t.txt", &"a b c d e f g h i j\n".repeat(10));
    let d = Dataset::from_source(
        &Source::from_path(&p, &docs(0.2)).unwrap(),
        Level::Word,
        ptb_rules(),
    )
    .unwrap();
    assert_eq!(d.train.len() + d.valid.len(), 110);
    assert_eq!(d.valid.len(), 22);
    assert!(d.test.is_none());

    let corpus = tempfile::tempdir().unwrap();
    write(&corpus, "train.txt", "x y z\n");
    write(&corpus, "valid.txt", "x q\n");
    write(&corpus, "test.txt", "z\n");
    let d = Dataset::from_source(
        &Source::from_path(corpus.path(), &docs(0.1)).unwrap(),
        Level::Word,
        ptb_rules(),
    )
    .unwrap();
    assert_eq!(d.valid.len(), 3);
    assert_eq!(d.valid[1], 0, "a word unseen in training is unknown");
    assert_eq!(d.test.unwrap().len(), 2);
}

#[test]
fn rows_are_contiguous_and_targets_are_shifted_by_one() {
    let stream: Vec<u32> = (0..23).collect();
    let rows = Rows::new(&stream, 3).unwrap();
    assert_eq!(rows.row_len, 7);
    let dev = device::cpu();
    let (x, y) = rows.window(2, 3, &dev);
    let x: Vec<i64> = x.into_data().convert::<i64>().try_into_vec().unwrap();
    let y: Vec<i64> = y.into_data().convert::<i64>().try_into_vec().unwrap();
    assert_eq!(x, [2, 3, 4, 9, 10, 11, 16, 17, 18]);
    assert_eq!(y, [3, 4, 5, 10, 11, 12, 17, 18, 19]);
    // A window never reads past the end of the rows.
    let (x, _) = rows.window(5, 10, &dev);
    assert_eq!(x.dims(), [3, 1]);
    assert!(Rows::new(&stream, 20).is_err());
}

#[test]
fn window_lengths_vary_around_bptt_and_never_go_below_five() {
    let mut w = WindowLengths::new(70, true, 0);
    let lens: Vec<usize> = (0..4000).map(|_| w.next_len()).collect();
    let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
    assert!(lens.iter().all(|&l| l >= 5));
    // 95% around 70 and 5% around 35: a mean near 68.
    assert!((66.0..70.0).contains(&mean), "mean {mean}");
    let halves = lens.iter().filter(|&&l| l < 50).count() as f64 / lens.len() as f64;
    assert!((0.03..0.08).contains(&halves), "{halves}");
    let mut fixed = WindowLengths::new(70, false, 0);
    assert_eq!(fixed.next_len(), 70);
}

#[test]
fn the_builtin_grammar_corpus_is_reproducible() {
    let a = Dataset::grammar(2000, Specials::Ptb, 4).unwrap();
    let b = Dataset::grammar(2000, Specials::Ptb, 4).unwrap();
    assert_eq!(a.train, b.train);
    assert_ne!(a.train[..500], a.valid[..500]);
    let h = a.entropy_rate.unwrap();
    assert!(h > 0.5 && h < 3.0, "{h}");
}

#[test]
fn one_cycle_warms_up_to_the_peak_then_anneals() {
    use awd::train::Schedule;
    use awd::train::optim::scheduled_lr;
    let lr = 1e-2;
    let at = |step| scheduled_lr(Schedule::OneCycle, lr, step, 1000);
    assert!((at(0) - lr / 25.0).abs() < 1e-12);
    assert!((at(250) - lr).abs() < 1e-12);
    assert!(at(100) > at(0) && at(100) < lr);
    assert!(at(600) < lr && at(600) > at(900));
    assert!((at(1000) - lr / 1e5).abs() < 1e-12);
    assert_eq!(scheduled_lr(Schedule::Constant, lr, 500, 1000), lr);
}

/// fastai's `fit_one_cycle` values step by step (recorded with fastai 2.8.12 by
/// tests/vectors/make_one_cycle.py): the learning rate as awd's one-cycle schedule gives it,
/// and the momentum from the same cosine pair (fastai computes the positions in f32: within 1e-6
/// of the schedule's peak).
#[test]
fn one_cycle_is_fastais_step_by_step() {
    use awd::train::Schedule;
    use awd::train::optim::{combined_cos, scheduled_lr};
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/one_cycle.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let (lr_max, n) = (
        v["lr_max"].as_f64().unwrap(),
        v["steps"].as_u64().unwrap() as usize,
    );
    let moms: Vec<f64> = serde_json::from_value(v["moms"].clone()).unwrap();
    let close = |got: f64, want: f64, peak: f64| (got - want).abs() <= 1e-6 * peak;
    for i in 0..n {
        let want_lr = v["lr"][i].as_f64().unwrap();
        let lr = scheduled_lr(Schedule::OneCycle, lr_max, i, n);
        assert!(close(lr, want_lr, lr_max), "step {i}: lr {lr} vs {want_lr}");
        let want_mom = v["mom"][i].as_f64().unwrap();
        let mom = combined_cos(0.25, moms[0], moms[1], moms[2], i as f64 / n as f64);
        assert!(
            close(mom, want_mom, moms[0]),
            "step {i}: momentum {mom} vs {want_mom}"
        );
    }
}

#[test]
fn nt_asgd_switches_when_validation_stops_improving_for_nonmono_checks() {
    use awd::train::optim::non_monotone;
    let history = [5.0, 4.0, 3.5, 3.6, 3.7];
    // Not enough checks yet.
    assert!(!non_monotone(&history[..2], 9.0, 2));
    // With checks [5.0, 4.0, 3.5] and nonmono 2, only 5.0 lies before the last two.
    assert!(non_monotone(&history[..3], 5.5, 2));
    assert!(!non_monotone(&history[..3], 4.5, 2));
    // The best (3.5) lies before the last `nonmono` checks: 3.55 does not beat it.
    assert!(non_monotone(&history, 3.55, 2));
    assert!(!non_monotone(&history, 3.4, 2));
}

/// fastai's `slice(lr/2.6**4, lr)` over the layer groups (`even_mults`): geometric from the low
/// rate to `lr`; without a low rate every group trains at `lr`.
#[test]
fn discriminative_rates_are_fastais_even_mults() {
    use awd::train::stage::discriminative_factor;
    let lr = 1e-2;
    let got: Vec<f64> = (0..5)
        .map(|i| discriminative_factor(lr, lr / 2.6f64.powi(4), i, 5))
        .collect();
    for (i, f) in got.iter().enumerate() {
        let want = 2.6f64.powi(i as i32 - 4);
        assert!((f - want).abs() < 1e-12, "group {i}: {f} vs {want}");
    }
    assert_eq!(discriminative_factor(lr, 0.0, 2, 5), 1.0);
}
