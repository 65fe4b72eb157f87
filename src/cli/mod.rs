//! The `awd` command line: a thin layer over the library.

mod audit;
mod bench;
mod classify;
mod convert;
mod demo;
mod eval;
mod generate;
mod lr_find;
mod serve;
mod tokenize;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "awd",
    version,
    about = "Weight-dropped recurrent language models (AWD-LSTM)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the weight-dropped Linear and LSTM examples and report every parameter's gradient.
    Demo {
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Train a language model (no --data: the tiny preset on awd's built-in grammar corpus).
    Train(Box<train::TrainArgs>),
    /// A text classifier on the AWD-LSTM encoder (ULMFiT): train, predict, eval.
    #[command(subcommand)]
    Classify(classify::ClassifyCommand),
    /// fastai's learning-rate finder: sweep the rate over a few batches, suggest one, plot the loss.
    #[command(subcommand, name = "lr-find")]
    LrFind(lr_find::LrFindCommand),
    /// Perplexity of a trained model on a text.
    Eval(eval::EvalArgs),
    /// Generate text from a trained model.
    Generate(generate::GenerateArgs),
    /// One training step, audited: every parameter's gradient and the mask it passed through.
    Audit(audit::AuditArgs),
    /// The path a parameter's gradient takes (text or Graphviz DOT).
    Explain(audit::ExplainArgs),
    /// Time training steps, evaluation and generation of the real model (P1, P2 shapes).
    Bench(bench::BenchArgs),
    /// Serve models over HTTP: classify, score, generate, tokenize (JSON), with /metrics.
    Serve(Box<serve::ServeArgs>),
    /// fastai's tokenization (its rules, then spaCy's English tokenizer) of one document a line.
    Tokenize(tokenize::TokenizeArgs),
    /// Convert a fastai AWD-LSTM checkpoint between .pth and .safetensors (format from the extension).
    Convert {
        input: std::path::PathBuf,
        output: std::path::PathBuf,
        /// Overwrite OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Says on stderr what multiplies the products when they are not plain f32: bf16's unit, how
/// it compared with f32 in the start-up probe, what `auto` chose; on a GPU, that bf16 is a CPU
/// path.
fn note_precision(choice: crate::kernels::PrecisionChoice, device: &crate::device::Device) {
    use crate::kernels::Kernels;
    let probe = burn::tensor::Tensor::<1>::zeros([1], device);
    if Kernels::of(&probe) != Some(Kernels::Cpu) {
        if choice != crate::kernels::PrecisionChoice::F32 {
            eprintln!("--precision {choice:?} is a CPU path: this device computes in f32");
        }
        return;
    }
    if let Some(note) = choice.note() {
        eprintln!("{note}");
    }
}

/// `runs/NAME`, or `runs/NAME-2`, `-3`, ... : the first that does not exist yet.
fn new_run_dir(name: &str) -> std::path::PathBuf {
    let base = std::path::PathBuf::from("runs").join(name);
    (1..)
        .map(|i| match i {
            1 => base.clone(),
            i => std::path::PathBuf::from(format!("{}-{i}", base.display())),
        })
        .find(|p| !p.exists())
        .expect("some name is free")
}

/// A flag Ctrl-C sets (the run then saves and stops); a second Ctrl-C ends the process the usual
/// way.
fn stop_on_ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::Ordering;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    stop
}

/// Runs the command line; errors are printed as one message, never a panic trace.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { seed } => demo::run(seed),
        Command::Train(args) => train::run(*args),
        Command::Audit(args) => audit::run_audit(args),
        Command::Bench(args) => bench::run(args),
        Command::Explain(args) => audit::run_explain(args),
        Command::Eval(args) => eval::run(args),
        Command::Classify(cmd) => classify::run(cmd),
        Command::LrFind(cmd) => lr_find::run(cmd),
        Command::Generate(args) => generate::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Convert {
            input,
            output,
            force,
        } => convert::run(&input, &output, force),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
