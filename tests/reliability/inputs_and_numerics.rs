use super::*;

#[test]
fn a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("ckpt.bin");
    write_atomic(&good, b"old and good").unwrap();
    // The target is a directory: the final rename fails.
    let blocked = tmp.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("inside"), "x").unwrap();
    assert!(write_atomic(&blocked, b"new").is_err());
    assert_eq!(std::fs::read(&good).unwrap(), b"old and good");
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "no temporary left behind: {names:?}");
}

#[test]
fn fuzz_corpus_reader_never_panics() {
    timed("corpus reader", || {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.txt");
        proptest!(ProptestConfig::with_cases(cases()), |(bytes in proptest::collection::vec(any::<u8>(), 0..400), char_level: bool)| {
            std::fs::write(&path, &bytes).unwrap();
            let level = if char_level { Level::Char } else { Level::Word };
            let _ = for_each_token(&path, level, |_| {});
        });
    });
}

#[test]
fn fuzz_checkpoint_readers_never_panic_on_mutated_files() {
    let (st, pt) = small_files();
    let tmp = tempfile::tempdir().unwrap();
    timed("safetensors and pth readers (mutations)", || {
        proptest!(ProptestConfig::with_cases(cases()), |(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), which: bool)| {
            let mut bytes = if which { st.clone() } else { pt.clone() };
            for (i, b) in &flips {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            if flips.len() % 2 == 0 {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let path = tmp.path().join(if which { "m.safetensors" } else { "m.pth" });
            std::fs::write(&path, &bytes).unwrap();
            // Either read (the flips hit tensor values only) or refused with the file named.
            let named = |e: String| e.contains(path.to_str().unwrap());
            if let Err(e) = fastai::read_tensors(&path) {
                prop_assert!(named(e.to_string()), "{e}");
            }
            if let Err(e) = native::load(&path, &Masks::default(), &device::cpu()) {
                prop_assert!(named(e.to_string()), "{e}");
            }
        });
    });
}

#[test]
fn fuzz_random_bytes_as_checkpoints_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    timed("checkpoint readers (random bytes)", || {
        proptest!(ProptestConfig::with_cases(cases()), |(bytes in proptest::collection::vec(any::<u8>(), 0..300), ext in 0usize..3)| {
            let name = ["x.pth", "x.safetensors", "x.pt"][ext];
            let path = tmp.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            // 300 random bytes are never a checkpoint.
            prop_assert!(fastai::read_tensors(&path).is_err());
        });
    });
}

#[test]
fn hostile_headers_are_refused_without_allocating_what_they_declare() {
    let tmp = tempfile::tempdir().unwrap();
    // safetensors declaring a 2^40-element tensor over 8 bytes of data.
    let header = br#"{"w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,8]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0u8; 8]);
    let p = tmp.path().join("huge.safetensors");
    std::fs::write(&p, &st).unwrap();
    assert!(fastai::read_tensors(&p).is_err());
    // A header that claims to be larger than the file.
    let mut st2 = (u64::MAX / 2).to_le_bytes().to_vec();
    st2.extend_from_slice(b"{}");
    std::fs::write(&p, &st2).unwrap();
    assert!(fastai::read_tensors(&p).is_err());

    // A .pth whose pickle declares a shape of 2^40 elements for a tiny storage.
    let mut state = BTreeMap::new();
    state.insert("w".to_string(), HostTensor::new(vec![2], vec![1.0, 2.0]));
    let good = pth::serialize(&state).unwrap();
    let p = tmp.path().join("huge.pth");
    let patched = patch_pickle_shape(&good);
    std::fs::write(&p, &patched).unwrap();
    let t = Instant::now();
    let r = fastai::read_tensors(&p);
    assert!(
        r.is_err(),
        "a shape larger than its storage must be refused"
    );
    assert!(t.elapsed() < Duration::from_secs(5));

    // A zip whose data.pkl is not a pickle.
    let bad_pickle = replace_entry(
        &good,
        "archive/data.pkl",
        b"\x80\x02garbage that is not a pickle",
    );
    std::fs::write(&p, bad_pickle).unwrap();
    let e = fastai::read_tensors(&p).unwrap_err().to_string();
    assert!(e.contains("huge.pth"), "{e}");
}

#[test]
fn gradient_clipping_is_pytorchs_total_norm_over_all_parameters() {
    let (model, mut grads) = tiny_model_and_grads();
    let before = host_grads(&model, &grads);
    let total: f64 = before
        .iter()
        .flatten()
        .map(|&g| (g as f64) * (g as f64))
        .sum::<f64>()
        .sqrt();
    let norms = grad_norms(&model, &grads);
    let max_norm = total / 3.0;
    let reported = clip_global_norm(&model, &mut grads, &norms, max_norm);
    assert!((reported - total).abs() <= 1e-6 * total);
    let factor = max_norm / (total + 1e-6);
    let after = host_grads(&model, &grads);
    for (b, a) in before.iter().flatten().zip(after.iter().flatten()) {
        assert!(((*b as f64) * factor - *a as f64).abs() <= 1e-6 * (1.0 + b.abs() as f64));
    }
    // Below the bound, nothing changes.
    let norms = grad_norms(&model, &grads);
    clip_global_norm(&model, &mut grads, &norms, total * 10.0);
    assert_eq!(host_grads(&model, &grads), after);
}

#[test]
fn a_non_finite_gradient_is_named_by_its_parameter() {
    let (model, mut grads) = tiny_model_and_grads();
    let norms = grad_norms(&model, &grads);
    assert!(non_finite_gradient(&norms).is_none());
    let (path, id, _) = norms
        .iter()
        .find(|n| n.0.contains("weight_hh_l0_raw"))
        .unwrap()
        .clone();
    let g: Tensor<2> = grads.remove(id).unwrap();
    grads.register(id, g.mul_scalar(f32::NAN));
    let norms = grad_norms(&model, &grads);
    assert_eq!(
        non_finite_gradient(&norms).map(|n| n.0),
        Some(path.as_str())
    );
}

#[test]
fn two_runs_with_the_same_seed_write_byte_identical_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        let mut args = run_args(d);
        if let Some(e) = args.iter_mut().skip_while(|s| *s != "--epochs").nth(1) {
            *e = "2".into();
        }
        let o = awd(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success());
    }
    for f in ["train-state.safetensors", "model.safetensors"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn the_mask_stream_does_not_depend_on_the_thread_count() {
    let masks_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let dev = device::cpu_autodiff();
            let masks = Masks::seeded(11);
            let config = AwdLstmConfig {
                vocab_size: 20,
                emb_size: 8,
                hidden_size: 16,
                n_layers: 3,
                ..AwdLstmConfig::default()
            };
            let mut m = set_training(LanguageModel::new(&config, &masks, &dev).unwrap(), true);
            masks.start_recording();
            for _ in 0..3 {
                let x: Tensor<2, Int> = Tensor::from_data(
                    TensorData::new((0..40).map(|i| i % 20).collect::<Vec<i64>>(), [4, 10]),
                    &dev,
                );
                m.forward(x).unwrap();
            }
            masks
                .take_records()
                .into_iter()
                .map(|r| (r.shape, r.values))
                .collect::<Vec<_>>()
        })
    };
    let one = masks_with(1);
    assert!(one.len() >= 3 * 7);
    assert_eq!(one, masks_with(2));
}
