//! What a run shows and records as it goes: the progress bar, the training loss every
//! `log_every` steps and each validation, as metrics CSV rows.

use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::job::Scored;
use super::metrics::{Metrics, Row, last_elapsed};
use crate::error::Result;

pub struct Reporter {
    /// `None` on a rank that does not write.
    metrics: Option<Metrics>,
    bar: ProgressBar,
    show: bool,
    log_every: usize,
    /// Training loss, steps and tokens since the last logged row.
    loss: f64,
    steps: usize,
    tokens: u64,
    since: Instant,
    started: Instant,
    /// Seconds the run had trained before this process (from its metrics).
    elapsed_before: f64,
}

impl Reporter {
    /// Opens the metrics file (appended to when `resume`).
    pub fn open(metrics: &Path, resume: bool, show: bool, log_every: usize) -> Result<Self> {
        Ok(Self {
            elapsed_before: if resume { last_elapsed(metrics) } else { 0.0 },
            metrics: Some(Metrics::open(metrics, resume)?),
            bar: ProgressBar::hidden(),
            show,
            log_every,
            loss: 0.0,
            steps: 0,
            tokens: 0,
            since: Instant::now(),
            started: Instant::now(),
        })
    }

    /// Seconds trained, earlier processes included.
    pub fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// A reporter that shows and writes nothing (a data-parallel rank other than the first).
    pub fn silent() -> Self {
        Self {
            metrics: None,
            bar: ProgressBar::hidden(),
            show: false,
            log_every: usize::MAX,
            loss: 0.0,
            steps: 0,
            tokens: 0,
            since: Instant::now(),
            started: Instant::now(),
            elapsed_before: 0.0,
        }
    }

    pub fn metrics_path(&self) -> Option<&Path> {
        self.metrics.as_ref().map(|m| m.path())
    }

    /// A bar over an epoch of `len` positions, at `pos`.
    pub fn start_epoch(&mut self, epoch: usize, len: usize, pos: usize) {
        let target = if self.show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        self.bar = ProgressBar::with_draw_target(Some(len as u64), target);
        self.bar.set_style(
            ProgressStyle::with_template("{msg:40} [{bar:30}] {percent:>3}% {elapsed_precise}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        self.bar.set_message(format!("epoch {}", epoch + 1));
        self.bar.set_position(pos as u64);
        (self.loss, self.steps, self.tokens) = (0.0, 0, 0);
        self.since = Instant::now();
    }

    /// After step `step` (1-based) of epoch `epoch` (0-based), at position `pos`.
    pub fn step(
        &mut self,
        step: usize,
        epoch: usize,
        pos: usize,
        loss: f64,
        tokens: u64,
        lr: f64,
    ) -> Result<()> {
        self.loss += loss;
        self.steps += 1;
        self.tokens += tokens;
        self.bar.set_position(pos as u64);
        if !step.is_multiple_of(self.log_every) {
            return Ok(());
        }
        let tps = self.tokens as f64 / self.since.elapsed().as_secs_f64().max(1e-9);
        let mean = self.loss / self.steps as f64;
        self.bar.set_message(format!(
            "epoch {} loss {mean:.3} ppl {:.1} {tps:.0} tok/s",
            epoch + 1,
            mean.exp()
        ));
        let elapsed = self.elapsed();
        let Some(metrics) = self.metrics.as_mut() else {
            return Ok(());
        };
        metrics.write(&Row {
            step,
            epoch: epoch + 1,
            train_loss: Some(mean),
            val_loss: None,
            lr,
            tokens_per_s: tps,
            elapsed_s: elapsed,
        })?;
        (self.loss, self.steps, self.tokens) = (0.0, 0, 0);
        self.since = Instant::now();
        Ok(())
    }

    /// A validation after `step`, in (1-based) `epoch`; `tokens` trained in all.
    pub fn validation<S: Scored>(
        &mut self,
        step: usize,
        epoch: usize,
        scored: &S,
        lr: f64,
        tokens: u64,
    ) -> Result<()> {
        let val = scored.loss();
        self.validation_row(step, epoch, val, lr, tokens)?;
        if self.show {
            let score = match scored.accuracy() {
                Some(a) => format!("accuracy {:.2}%", 100.0 * a),
                None => format!("ppl {:.2}", val.exp()),
            };
            eprintln!("epoch {epoch:>3}  step {step:>6}  valid loss {val:.4}  {score}");
        }
        Ok(())
    }

    fn validation_row(
        &mut self,
        step: usize,
        epoch: usize,
        val: f64,
        lr: f64,
        tokens: u64,
    ) -> Result<()> {
        self.bar.finish_and_clear();
        let elapsed = self.elapsed();
        let Some(metrics) = self.metrics.as_mut() else {
            return Ok(());
        };
        metrics.write(&Row {
            step,
            epoch,
            train_loss: (self.steps > 0).then(|| self.loss / self.steps as f64),
            val_loss: Some(val),
            lr,
            tokens_per_s: tokens as f64 / elapsed.max(1e-9),
            elapsed_s: elapsed,
        })
    }

    pub fn flush(&mut self) -> Result<()> {
        self.metrics.as_mut().map_or(Ok(()), |m| m.flush())
    }

    /// Leaves the bar where it is (a stop on request).
    pub fn abandon(&self) {
        self.bar.abandon();
    }

    /// A line for the user, also when the bar is hidden.
    pub fn say(&self, line: &str) {
        if self.show {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }
}
