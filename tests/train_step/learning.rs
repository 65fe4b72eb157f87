use super::*;

/// The README's main job (the tiny preset on the built-in grammar) learns: the validation loss
/// falls from the untrained model's by at least 1.5 nats, and the test perplexity ends within
/// 8% of the grammar's entropy (measured: 2.7–3.9% above it over seeds 0–3; untrained ≈ 3.6
/// nats, trained ≈ 1.8).
#[test]
fn the_main_job_learns_close_to_the_grammars_entropy() {
    let _serial = serial();
    let cfg = Preset::Tiny.config();
    let data = Dataset::grammar(cfg.grammar_tokens, cfg.specials, cfg.seed).unwrap();
    let entropy = data.entropy_rate.unwrap();
    let (mut untrained, _) = init_model(&cfg, data.vocab.len(), &device::cpu()).unwrap();
    let before = awd::train::eval::mean_loss(
        &mut untrained,
        &data.valid,
        cfg.eval_batch_size,
        cfg.bptt,
        &device::cpu(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = train(cfg, data, &tmp.path().join("run")).unwrap();
    assert!(
        before - s.fit.metrics >= 1.5,
        "{before} -> {}",
        s.fit.metrics
    );
    let above = s.test_loss.unwrap().exp() / entropy.exp() - 1.0;
    assert!(above < 0.08, "{:.1}% above the entropy", 100.0 * above);
}

/// A `--config` file's `[model]` table overrides only the fields it names; the preset keeps the
/// rest (the model's hyper-parameters are one list, nested in the run's).
#[test]
fn a_config_files_model_table_merges_into_the_preset() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.toml");
    std::fs::write(
        &path,
        "epochs = 3\n[model]\nemb_size = 16\nbidirectional = true\n",
    )
    .unwrap();
    let base = Preset::Tiny.config();
    let cfg = TrainConfig::from_toml_file(&path, base.clone()).unwrap();
    assert_eq!(cfg.epochs, 3);
    assert_eq!(cfg.model.emb_size, 16);
    assert!(cfg.model.bidirectional);
    assert_eq!(cfg.model.hidden_size, base.model.hidden_size);
    assert_eq!(cfg.lr, base.lr);
    std::fs::write(&path, "emb_size = 16\n").unwrap();
    let err = TrainConfig::from_toml_file(&path, base)
        .unwrap_err()
        .to_string();
    assert!(err.contains("emb_size"), "{err}");
}

/// fastai's `awd_lstm_lm_split` and `freeze`: one group per LSTM layer, then embedding +
/// decoder; with all but the last frozen, a step moves only the embedding and the decoder bias.
#[test]
fn lm_groups_split_as_fastai_and_freeze_all_but_the_last() {
    use awd::params::param_paths;
    let _serial = serial();
    let cfg = TrainConfig {
        model: AwdLstmConfig {
            n_layers: 3,
            ..small().model
        },
        ..small()
    };
    let data = Dataset::grammar(2000, Specials::Ptb, 1).unwrap();
    let dev = device::cpu_autodiff();
    let (model, _) = init_model(&cfg, data.vocab.len(), &dev).unwrap();
    let mut groups = model.layer_groups();
    assert_eq!(groups.len(), 4);
    let paths = param_paths(&model);
    let ids = awd::train::state::param_ids(&model);
    let names = |g: &Group| -> Vec<String> {
        let of = |p: &String| ParamId::from(ids[p]);
        let mut v: Vec<String> = paths
            .iter()
            .filter(|p| g.ids.contains(&of(p)))
            .cloned()
            .collect();
        v.sort();
        v
    };
    for (l, g) in groups.iter().take(3).enumerate() {
        assert!(!g.ids.is_empty());
        assert!(
            names(g)
                .iter()
                .all(|p| p.starts_with(&format!("0.rnns.{l}."))),
            "{:?}",
            names(g)
        );
    }
    assert_eq!(names(&groups[3]), ["0.encoder.weight", "1.decoder.bias"]);
    for g in groups.iter_mut().take(3) {
        g.frozen = true;
    }
    let before: std::collections::BTreeMap<_, _> = named_values(&model).into_iter().collect();
    let mut step = TrainStep::new(&cfg.optim);
    let model = step.set_groups(model, groups).unwrap();
    let rows = Rows::new(&data.train, cfg.batch_size).unwrap();
    let (x, y) = rows.window(0, cfg.bptt, &dev);
    let (model, _) = step.lm(model, x, y, cfg.lr).unwrap();
    for (path, after) in named_values(&model) {
        let moved = before[&path] != after;
        assert_eq!(moved, !path.starts_with("0.rnns."), "{path}");
    }
}

/// The neural cache as the paper mixes it: with λ = 0 it is the model alone; on a text of one
/// token repeated, a window of one position at θ = 0 points at the right token every time after
/// the first, so each such position's probability is at least λ, and the loss falls from a
/// random model's (~ln V) to at most about -ln λ.
#[test]
fn the_neural_cache_mixes_in_the_tokens_seen() {
    use awd::train::eval::{CacheConfig, mean_loss, mean_loss_with_cache};
    let _serial = serial();
    let dev = device::cpu();
    let cfg = Preset::Tiny.config();
    let (mut model, _) = init_model(&cfg, 40, &dev).unwrap();
    let ids: Vec<u32> = vec![7; 400];
    let plain = mean_loss(&mut model, &ids, 1, 20, &dev).unwrap();
    let cache = |window, theta, lambda| CacheConfig {
        window,
        theta,
        lambda,
    };
    let off = mean_loss_with_cache(&mut model, &ids, 1, 20, cache(10, 1.0, 0.0), &dev).unwrap();
    assert!((off - plain).abs() < 1e-5, "λ 0: {off} vs {plain}");
    let on = mean_loss_with_cache(&mut model, &ids, 1, 20, cache(1, 0.0, 0.5), &dev).unwrap();
    let n = (ids.len() - 1) as f64;
    let bound = ((n - 1.0) * 2f64.ln() + plain * 3.0) / n;
    assert!(plain > 2.0, "a random model is unsure: {plain}");
    assert!(on <= bound, "cache: {on} above {bound} (plain {plain})");
}
