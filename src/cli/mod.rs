//! The `awd` command line: a thin layer over the library.

mod convert;
mod demo;

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
    /// Convert a fastai AWD-LSTM checkpoint between .pth and .safetensors (format from the extension).
    Convert {
        input: std::path::PathBuf,
        output: std::path::PathBuf,
        /// Overwrite OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the command line; errors are printed as one message, never a panic trace.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { seed } => demo::run(seed),
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
