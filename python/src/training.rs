//! Training from Python: the library's jobs (`awd::jobs::train`) with the command line's options,
//! parsed by the same flag definitions, run on a thread of their own so that Ctrl-C in Python
//! stops them at a step, with a checkpoint to resume from.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use awd::classify::{ClassifyConfig, ClassifyFlags};
use awd::data::download::PublicData;
use awd::jobs::train::{
    ClassifierTraining, LmTraining, new_classifier, new_lm, resume_classifier, resume_lm,
};
use awd::train::{Ended, Outcome, Preset, RunOptions, Stage, TrainFlags};
use clap::Parser;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::err;

/// `awd train`'s options (its flags without their leading `--`, as Python passes them).
#[derive(Parser)]
#[command(name = "awd.train_lm", no_binary_name = true, disable_help_flag = true)]
struct LmOptions {
    #[arg(long, value_enum, default_value = "tiny")]
    preset: Preset,
    #[arg(long, value_enum)]
    dataset: Option<PublicData>,
    #[command(flatten)]
    flags: TrainFlags,
}

/// `awd classify train`'s options.
#[derive(Parser)]
#[command(
    name = "awd.train_classifier",
    no_binary_name = true,
    disable_help_flag = true
)]
struct ClassifierOptions {
    #[arg(long)]
    stages: Option<String>,
    #[command(flatten)]
    flags: ClassifyFlags,
}

/// `argv` parsed as `P`'s flags; clap's refusal as a `ValueError` with its message (without its
/// `error:` prefix and usage lines).
fn parse<P: Parser>(argv: Vec<String>) -> PyResult<P> {
    P::try_parse_from(argv).map_err(|e| {
        let text = e.render().to_string();
        let message: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("Usage:"))
            .collect();
        let message = message.join("\n");
        PyValueError::new_err(message.trim().trim_start_matches("error: ").to_string())
    })
}

/// Trains (or resumes) a language model in `out`; returns what the run ended with.
#[pyfunction]
#[pyo3(signature = (out, argv, data = None, pretrained = None, pretrained_vocab = None, config = None, resume = false, overwrite = false, progress = true))]
#[allow(clippy::too_many_arguments)]
pub fn train_lm<'py>(
    py: Python<'py>,
    out: PathBuf,
    argv: Vec<String>,
    data: Option<PathBuf>,
    pretrained: Option<PathBuf>,
    pretrained_vocab: Option<PathBuf>,
    config: Option<PathBuf>,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let o: LmOptions = parse(argv)?;
    let spec = LmTraining {
        preset: o.preset,
        config_file: config,
        flags: o.flags,
        data,
        dataset: o.dataset,
        pretrained,
        pretrained_vocab,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let outcome = interruptible(py, &stop, move || {
        let opts = options(out, progress, flag);
        let started = match resume {
            true => resume_lm(&spec, opts)?,
            false => new_lm(&spec, opts.prepare(overwrite)?)?,
        };
        started.notes.iter().for_each(|n| eprintln!("{n}"));
        let mut learner = started.learner;
        learner.run()
    })?;
    let d = PyDict::new(py);
    match outcome {
        Outcome::Finished(s) => {
            let fit = &s.fit;
            d.set_item("steps", fit.steps)?;
            d.set_item("tokens_per_s", fit.tokens as f64 / fit.elapsed_s.max(1e-9))?;
            d.set_item("valid_loss", fit.metrics)?;
            d.set_item("valid_perplexity", fit.metrics.exp())?;
            d.set_item("test_perplexity", s.test_loss.map(f64::exp))?;
            d.set_item("model", s.model_path)?;
            d.set_item("metrics", s.metrics_path)?;
            d.set_item("plot", s.plot_path)?;
            Ok(d)
        }
        Outcome::Interrupted { step, checkpoint } => Err(interrupted(step, checkpoint)),
    }
}

/// Trains (or resumes) a classifier in `out` on the labelled documents `data`.
#[pyfunction]
#[pyo3(signature = (out, data, argv, encoder = None, vocab = None, config = None, backwards = false, resume = false, overwrite = false, progress = true))]
#[allow(clippy::too_many_arguments)]
pub fn train_classifier<'py>(
    py: Python<'py>,
    out: PathBuf,
    data: PathBuf,
    argv: Vec<String>,
    encoder: Option<PathBuf>,
    vocab: Option<PathBuf>,
    config: Option<PathBuf>,
    backwards: bool,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let o: ClassifierOptions = parse(argv)?;
    let mut cfg = ClassifyConfig::ulmfit();
    if let Some(path) = &config {
        cfg = awd::hyper::from_toml_file(path, cfg).map_err(err)?;
    }
    o.flags.apply(&mut cfg);
    if let Some(spec) = &o.stages {
        cfg.stages = Stage::parse_list(spec).map_err(err)?;
    }
    let spec = ClassifierTraining {
        config: cfg,
        data,
        encoder,
        vocab,
        backwards,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (ended, paths) = interruptible(py, &stop, move || {
        let opts = options(out, progress, flag);
        let started = match resume {
            true => resume_classifier(&spec.data, opts)?,
            false => new_classifier(&spec, opts, overwrite)?,
        };
        started.notes.iter().for_each(|n| eprintln!("{n}"));
        let mut learner = started.learner;
        let o = &learner.opts;
        let paths = (
            o.model_path(),
            o.out_dir.join("classifier.pth"),
            o.metrics_path(),
        );
        Ok((learner.run()?, paths))
    })?;
    match ended {
        Ended::Finished(s) => {
            let d = PyDict::new(py);
            d.set_item("steps", s.steps)?;
            d.set_item("tokens_per_s", s.train_tokens as f64 / s.train_s.max(1e-9))?;
            d.set_item("valid_accuracy", s.metrics.accuracy)?;
            d.set_item("valid_loss", s.metrics.loss)?;
            d.set_item("model", paths.0)?;
            d.set_item("fastai_model", paths.1)?;
            d.set_item("metrics", paths.2)?;
            Ok(d)
        }
        Ended::Interrupted { step, checkpoint } => Err(interrupted(step, checkpoint)),
    }
}

fn options(out_dir: PathBuf, progress: bool, stop: Arc<AtomicBool>) -> RunOptions {
    RunOptions {
        progress,
        stop,
        ..RunOptions::quiet(out_dir, awd::device::cpu_autodiff())
    }
}

/// Runs `work` on a thread of its own while this one waits with the GIL released, looking at
/// Python's signals: on Ctrl-C it sets `stop` (the run ends after its step, checkpointed) and
/// waits for the run to end.
fn interruptible<T: Send>(
    py: Python<'_>,
    stop: &AtomicBool,
    work: impl FnOnce() -> awd::Result<T> + Send,
) -> PyResult<T> {
    std::thread::scope(|s| {
        let run = s.spawn(|| crate::pool::install(work));
        while !run.is_finished() {
            py.detach(|| std::thread::sleep(Duration::from_millis(50)));
            if py.check_signals().is_err() {
                stop.store(true, Ordering::SeqCst);
            }
        }
        match run.join() {
            Ok(result) => result.map_err(err),
            Err(_) => Err(PyRuntimeError::new_err(
                "awd's training thread panicked (a bug: please report it)",
            )),
        }
    })
}

fn interrupted(step: usize, checkpoint: PathBuf) -> PyErr {
    PyKeyboardInterrupt::new_err(format!(
        "interrupted at step {step}; checkpoint {} (continue with resume=True)",
        checkpoint.display()
    ))
}
