use super::*;

/// fastai's own `.pth` of the classifier (written by PyTorch) reads as the safetensors copy does,
/// and a classifier written as `.pth` by awd reads back to the same tensors and predictions.
#[test]
fn classifier_checkpoints_move_between_pth_and_awd() {
    use awd::checkpoint::fastai::{read_tensors, write_tensors};
    let cfg = config();
    let from_torch = read_tensors(&clas_dir().join("fastai_clas.pth")).expect("reads");
    let state = load_from(&clas_dir(), "fastai_clas.safetensors");
    assert_eq!(from_torch, state);
    let dev = device::cpu();
    let model = TextClassifier::from_state_dict(&state, &cfg, &Masks::default(), &dev).unwrap();
    let mut model = set_training(model, false);
    assert_eq!(
        model.state_dict(),
        state,
        "every tensor, statistics included"
    );

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("clas.pth");
    write_tensors(&path, &model.state_dict()).unwrap();
    let back = read_tensors(&path).unwrap();
    assert_eq!(back, state);
    let mut again = set_training(
        TextClassifier::from_state_dict(&back, &cfg, &Masks::default(), &dev).unwrap(),
        false,
    );
    let x = get(
        &load_from(&clas_dir(), "vectors.safetensors"),
        "padded.eval.x",
    )
    .clone();
    let b = batch(&x, cfg.encoder.pad_token);
    assert_eq!(
        HostTensor::from_tensor(model.forward(&b).unwrap().logits),
        HostTensor::from_tensor(again.forward(&b).unwrap().logits)
    );

    // A tensor of the wrong shape, or a missing one, is named.
    let mut bad = state.clone();
    bad.insert(
        "1.layers.1.2.weight".into(),
        HostTensor::new(vec![2, 2], vec![0.0; 4]),
    );
    bad.remove("1.layers.0.0.running_var");
    let err = TextClassifier::from_state_dict(&bad, &cfg, &Masks::default(), &dev)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("1.layers.1.2.weight: shape [2, 2]"), "{err}");
    assert!(err.contains("1.layers.0.0.running_var: missing"), "{err}");
}

/// fastai's tutorial recipe, parsed from `--stages` as fastai's calls read.
#[test]
fn stages_parse_as_fastais_calls() {
    use awd::train::Stage as ClasStage;
    let parsed = ClasStage::parse_list("1:2e-2:1,1:1e-2:2,1:5e-3:3,2:1e-3").unwrap();
    assert_eq!(parsed, ClasStage::ulmfit());
    for bad in ["1", "x:1e-2", "1:fast", "1:1e-2:some", "1:2:3:4"] {
        let err = ClasStage::parse_list(bad).unwrap_err().to_string();
        assert!(err.contains("--stages") && err.contains(bad), "{err}");
    }
}

/// fastai's `SortedDL`: every document at most once per epoch, full batches only (the last
/// partial one dropped), each batch sorted longest first, the longest document in the first
/// batch; evaluation batches cover every document, longest first.
#[test]
fn training_batches_group_similar_lengths() {
    use awd::classify::batches::{eval_batches, train_batches};
    let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 613 + 1).collect();
    let longest = (0..lengths.len()).max_by_key(|&i| lengths[i]).unwrap();
    let batches = train_batches(&lengths, 16, 4);
    assert_eq!(batches.len(), 1000 / 16);
    assert!(batches.iter().all(|b| b.len() == 16));
    assert!(batches[0].iter().any(|&i| lengths[i] == lengths[longest]));
    let mut seen: Vec<usize> = batches.concat();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1000 / 16 * 16);
    for b in &batches {
        assert!(b.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
    }
    assert_ne!(
        batches,
        train_batches(&lengths, 16, 5),
        "a new order each epoch"
    );
    let eval = eval_batches(&lengths, 16);
    assert_eq!(eval.concat().len(), 1000);
    assert_eq!(lengths[eval[0][0]], lengths[longest]);
}

/// IMDb's layout: `train/<class>/*.txt` for training, `test/<class>/*.txt` for validation, other
/// folders (`unsup/`) and files ignored; without a `train/` folder, the class folders are split
/// at random.
#[test]
fn class_folders_read_as_imdb_is_laid_out() {
    use awd::classify::LabelOptions;
    use awd::classify::data::read_raw;
    let tmp = tempfile::tempdir().unwrap();
    let put = |path: &str, text: &str| {
        let p = tmp.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put("imdb/train/pos/0_9.txt", "great");
    put("imdb/train/neg/1_2.txt", "awful");
    put("imdb/train/neg/2_1.txt", "dull");
    put("imdb/test/pos/3_8.txt", "superb");
    put("imdb/unsup/4_0.txt", "no label");
    put("imdb/train/labeledBow.feat", "not a review");
    let opts = LabelOptions {
        text_col: "text",
        label_col: "label",
        valid_fraction: 0.5,
        seed: 0,
    };
    let raw = read_raw(&tmp.path().join("imdb"), &opts).unwrap();
    assert_eq!(raw.docs, ["awful", "dull", "great", "superb"]);
    assert_eq!(raw.labels, ["neg", "neg", "pos", "pos"]);
    assert_eq!(raw.is_valid, [false, false, false, true]);
    put("flat/a/1.txt", "one");
    put("flat/a/2.txt", "two");
    put("flat/b/3.txt", "three");
    put("flat/b/4.txt", "four");
    let raw = read_raw(&tmp.path().join("flat"), &opts).unwrap();
    assert_eq!(raw.is_valid.iter().filter(|&&v| v).count(), 2);
}

/// fastai's `awd_lstm_clas_split`: the embedding, each LSTM layer, the head, every parameter in
/// exactly one of them.
#[test]
fn layer_groups_are_fastais_classifier_split() {
    use awd::params::param_ids_by_path;
    let cfg = config();
    let model = TextClassifier::new(&cfg, &Masks::default(), &device::cpu()).unwrap();
    let groups = model.layer_groups();
    assert_eq!(groups.len(), cfg.encoder.n_layers + 2);
    let paths = param_ids_by_path(&model);
    let of = |id| groups.iter().position(|g| g.ids.contains(&id)).unwrap();
    for (path, id) in &paths {
        let want = if path.starts_with("0.module.encoder") {
            0
        } else if let Some(rest) = path.strip_prefix("0.module.rnns.") {
            1 + rest[..1].parse::<usize>().unwrap()
        } else {
            cfg.encoder.n_layers + 1
        };
        assert_eq!(of(*id), want, "{path}");
    }
    assert_eq!(
        groups.iter().map(|g| g.ids.len()).sum::<usize>(),
        paths.len()
    );
}
