//! `awd lr-find lm | classify`: fastai's learning-rate finder on the run `awd train` or `awd
//! classify train` would start with the same flags.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::train::lr_find::{Curve, Suggestion, Sweep};
use crate::train::{Job, Learner, RunOptions};

#[derive(Subcommand)]
pub enum LrFindCommand {
    /// The language model `awd train` would train with these flags.
    Lm {
        #[command(flatten)]
        sweep: SweepArgs,
        #[command(flatten)]
        run: Box<super::train::TrainArgs>,
    },
    /// The classifier `awd classify train` would train with these flags.
    Classify {
        #[command(flatten)]
        sweep: SweepArgs,
        #[command(flatten)]
        run: Box<super::classify::TrainArgs>,
    },
}

#[derive(Args)]
pub struct SweepArgs {
    /// The sweep's first learning rate.
    #[arg(long, default_value_t = 1e-7)]
    start_lr: f64,
    /// The rate the sweep grows towards.
    #[arg(long, default_value_t = 10.0)]
    end_lr: f64,
    /// Training batches in the sweep.
    #[arg(long, default_value_t = 100)]
    num_it: usize,
    /// Sweep every batch, also once the loss has blown up.
    #[arg(long)]
    no_stop_div: bool,
    /// fastai's suggestion methods to print (the first is marked first on the plot).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "valley")]
    suggest: Vec<Suggestion>,
    /// The plot of loss against learning rate (PNG).
    #[arg(long, default_value = "lr_find.png")]
    plot: PathBuf,
}

pub fn run(cmd: LrFindCommand) -> anyhow::Result<bool> {
    // The sweep writes no run: its learner works in a scratch directory.
    let scratch = tempfile::tempdir()?;
    let opts = |device: &str, quiet: bool| -> anyhow::Result<RunOptions> {
        Ok(RunOptions {
            out_dir: scratch.path().join("run"),
            device: crate::device::select(device)?.autodiff(),
            progress: !quiet,
            stop: super::stop_on_ctrl_c(),
            dist: Default::default(),
        })
    };
    match cmd {
        LrFindCommand::Lm { sweep, run } => {
            let prepared = opts(&run.device, run.quiet)?.prepare(true)?;
            let started = crate::jobs::train::new_lm(&run.spec(), prepared)?;
            started.notes.iter().for_each(|n| eprintln!("{n}"));
            sweep_and_report(started.learner, &sweep)
        }
        LrFindCommand::Classify { sweep, run } => {
            let opts = opts(&run.device, run.quiet)?;
            let started = crate::jobs::train::new_classifier(&run.spec()?, opts, true)?;
            started.notes.iter().for_each(|n| eprintln!("{n}"));
            sweep_and_report(started.learner, &sweep)
        }
    }
}

fn sweep_and_report<J: Job>(mut learner: Learner<J>, args: &SweepArgs) -> anyhow::Result<bool> {
    let sweep = Sweep {
        start: args.start_lr,
        end: args.end_lr,
        iterations: args.num_it,
        stop_div: !args.no_stop_div,
    };
    eprintln!(
        "sweeping the learning rate from {:.0e} to {:.0e} over {} batches",
        sweep.start, sweep.end, sweep.iterations
    );
    let curve = learner.lr_find(&sweep)?;
    print_curve(&curve, &args.suggest, &args.plot)
}

/// The suggestions (fastai's names and rates) on stdout, and the plot with them marked.
fn print_curve(
    curve: &Curve,
    methods: &[Suggestion],
    plot: &std::path::Path,
) -> anyhow::Result<bool> {
    let mut marks = Vec::new();
    for &m in methods {
        let name = format!("{m:?}").to_lowercase();
        match curve.suggest(m) {
            Some(s) => {
                let line = format!("{name}: {:.2e}", s.lr);
                println!("{line}");
                marks.push((line, s.point));
            }
            None => println!(
                "{name}: none (the sweep ended after {} batches)",
                curve.lrs.len()
            ),
        }
    }
    crate::train::plot::lr_find(&curve.lrs, &curve.losses, &marks, plot)?;
    println!("plot: {}", plot.display());
    Ok(!marks.is_empty())
}
