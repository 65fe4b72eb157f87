//! fastai 2.8's learning-rate finder: an exponential sweep of the rate over a number of training
//! batches, stopped once the smoothed loss passes 4× its minimum, the model and the optimizer
//! put back afterwards; then fastai's suggestions (`valley`, `slide`, `minimum`, `steep`) read
//! off the curve, computed as fastai computes them (in f32, as on its torch tensors).

use std::sync::atomic::Ordering;

use super::job::Job;
use super::learner::Learner;
use super::stage::Stage;
use crate::error::{AwdError, Result};

/// The sweep: fastai's `lr_find(start_lr, end_lr, num_it, stop_div)`.
#[derive(Debug, Clone, Copy)]
pub struct Sweep {
    pub start: f64,
    pub end: f64,
    pub iterations: usize,
    /// Stop once the smoothed loss passes 4× the least one seen.
    pub stop_div: bool,
}

impl Default for Sweep {
    fn default() -> Self {
        Self {
            start: 1e-7,
            end: 10.0,
            iterations: 100,
            stop_div: true,
        }
    }
}

/// What a sweep recorded: each batch's rate and the smoothed loss after it (fastai's
/// `Recorder.lrs` and `.losses`).
#[derive(Debug, Clone, Default)]
pub struct Curve {
    pub lrs: Vec<f64>,
    pub losses: Vec<f64>,
    /// The sweep's length (fastai's `num_it`), which the suggestions' trimming uses.
    pub iterations: usize,
}

/// fastai's suggestion methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suggestion {
    /// The middle of the longest valley (fastai's default).
    Valley,
    /// An interval slide rule on the loss's gradient.
    Slide,
    /// A tenth of the rate at the least loss.
    Minimum,
    /// Where the loss falls fastest against log(rate).
    Steep,
}

/// A suggested rate and the point (rate, loss) it marks on the plot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Suggested {
    pub lr: f64,
    pub point: (f64, f64),
}

impl Curve {
    /// The part fastai's suggestions read: without the first tenth of the sweep and the last 5
    /// points, and cut at the first NaN loss; as f32, as fastai's tensors hold them.
    pub fn trimmed(&self) -> (Vec<f32>, Vec<f32>) {
        let (from, to) = (self.iterations / 10, self.lrs.len().saturating_sub(5));
        let mut lrs: Vec<f32> = self
            .lrs
            .get(from..to)
            .unwrap_or(&[])
            .iter()
            .map(|&v| v as f32)
            .collect();
        let mut losses: Vec<f32> = self
            .losses
            .get(from..to)
            .unwrap_or(&[])
            .iter()
            .map(|&v| v as f32)
            .collect();
        if let Some(nan) = losses.iter().position(|l| l.is_nan()) {
            lrs.truncate(nan);
            losses.truncate(nan);
        }
        (lrs, losses)
    }

    /// The rate `method` suggests (`None`: the curve is too short for it).
    pub fn suggest(&self, method: Suggestion) -> Option<Suggested> {
        let (lrs, losses) = self.trimmed();
        if lrs.is_empty() {
            return None;
        }
        match method {
            Suggestion::Valley => Some(valley(&lrs, &losses)),
            Suggestion::Slide => slide(&lrs, &losses),
            Suggestion::Minimum => Some(minimum(&lrs, &losses)),
            Suggestion::Steep => steep(&lrs, &losses),
        }
    }
}

/// fastai's `valley`: the longest decreasing run of losses (a longest-decreasing-subsequence
/// table, updated as fastai's loop updates it), and the point 1/3 + 1/6 of its way along.
fn valley(lrs: &[f32], losses: &[f32]) -> Suggested {
    let n = losses.len();
    let (mut max_start, mut max_end) = (0usize, 0usize);
    let mut lds = vec![1usize; n];
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end - lds[max_end];
            }
        }
    }
    let sections = (max_end - max_start) as f64 / 3.0;
    let idx = max_start + sections as usize + (sections / 2.0) as usize;
    let lr = lrs[idx] as f64;
    Suggested {
        lr,
        point: (lr, losses[idx] as f64),
    }
}

/// fastai's `slide` (lr_diff 15, thresh 0.005): from the right end, slide a pair of points 15
/// apart to the left while the loss's gradient differs between them by more than the threshold.
fn slide(lrs: &[f32], losses: &[f32]) -> Option<Suggested> {
    let n = losses.len() as isize;
    let (lr_diff, thresh) = (15isize, 0.005f32);
    if n < 2 || n < lr_diff + 1 {
        return None;
    }
    let grad = gradient(losses);
    let at = |i: isize| (n + i) as usize;
    let (mut r, mut l) = (-1isize, -1 - lr_diff);
    let mut local_min = lrs[at(l)];
    while l >= -n && (grad[at(r)] - grad[at(l)]).abs() > thresh {
        local_min = lrs[at(l)];
        r -= 1;
        l -= 1;
    }
    let lr = local_min as f64;
    let log: Vec<f64> = lrs.iter().map(|&v| v.log10() as f64).collect();
    let losses: Vec<f64> = losses.iter().map(|&v| v as f64).collect();
    Some(Suggested {
        lr,
        point: (lr, interp(lr.log10(), &log, &losses)),
    })
}

/// fastai's `minimum`: a tenth of the rate at the least loss (the first, on ties).
fn minimum(lrs: &[f32], losses: &[f32]) -> Suggested {
    let i = argmin(losses);
    let lr = lrs[i] as f64;
    Suggested {
        lr: lr / 10.0,
        point: (lr, losses[i] as f64),
    }
}

/// fastai's `steep`: the rate where the loss's slope against log(rate) is steepest downward.
fn steep(lrs: &[f32], losses: &[f32]) -> Option<Suggested> {
    if losses.len() < 2 {
        return None;
    }
    let slopes: Vec<f32> = (1..losses.len())
        .map(|i| (losses[i] - losses[i - 1]) / (lrs[i].ln() - lrs[i - 1].ln()))
        .collect();
    let i = argmin(&slopes);
    let lr = lrs[i] as f64;
    Some(Suggested {
        lr,
        point: (lr, losses[i] as f64),
    })
}

/// The index of the least value (the first of equals; NaN never least).
fn argmin(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x < v[best] {
            best = i;
        }
    }
    best
}

/// NumPy's `gradient` of evenly spaced samples: central differences inside, one-sided at the ends.
fn gradient(v: &[f32]) -> Vec<f32> {
    let n = v.len();
    (0..n)
        .map(|i| match i {
            0 => v[1] - v[0],
            i if i == n - 1 => v[n - 1] - v[n - 2],
            i => (v[i + 1] - v[i - 1]) / 2.0,
        })
        .collect()
}

/// NumPy's `interp`: `x` on the piecewise-linear curve through (`xs`, `ys`), `xs` increasing.
fn interp(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    if x <= xs[0] {
        return ys[0];
    }
    for i in 1..xs.len() {
        if x <= xs[i] {
            let t = (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
            return ys[i - 1] + t * (ys[i] - ys[i - 1]);
        }
    }
    ys[ys.len() - 1]
}

/// fastai's `AvgSmoothLoss` (β 0.98, debiased), in f32 as on its tensors.
#[derive(Default)]
struct Smoother {
    val: f32,
    count: i32,
}

impl Smoother {
    fn add(&mut self, loss: f64) -> f64 {
        self.count += 1;
        // torch.lerp(loss, val, 0.98)
        let loss = loss as f32;
        self.val = loss + 0.98 * (self.val - loss);
        (self.val / (1.0 - 0.98f32.powi(self.count))) as f64
    }
}

impl<J: Job> Learner<J> {
    /// fastai's `lr_find`: trains on `sweep.iterations` batches (in the first stage's layer
    /// groups, every group at the swept rate) with the rate growing exponentially from
    /// `sweep.start` to `sweep.end`, recording the smoothed loss; a diverged step ends the sweep
    /// as a passed limit does. The model and the optimizer are put back afterwards.
    pub fn lr_find(&mut self, sweep: &Sweep) -> Result<Curve> {
        if !(sweep.start > 0.0 && sweep.end > sweep.start && sweep.iterations > 0) {
            return Err(AwdError::Config(format!(
                "a sweep needs 0 < start < end and at least one iteration (start {:e}, end {:e}, {} iterations)",
                sweep.start, sweep.end, sweep.iterations
            )));
        }
        let kept = (self.model.clone(), self.step.clone(), self.stage);
        let first = Stage {
            lr_low: 0.0,
            ..self.plan.stages[0]
        };
        self.set_stage_groups(&first)?;
        let mut curve = Curve {
            iterations: sweep.iterations.max(6),
            ..Curve::default()
        };
        let (mut smooth, mut best) = (Smoother::default(), f64::INFINITY);
        let (mut epoch, mut pos) = (0usize, 0usize);
        let end = self.job.epoch_end();
        self.job.start_epoch(self.model.as_mut().expect("model"), 0);
        for i in 0..curve.iterations {
            if self.opts.stop.load(Ordering::SeqCst) {
                break;
            }
            if pos >= end {
                (epoch, pos) = (epoch + 1, 0);
                self.job
                    .start_epoch(self.model.as_mut().expect("model"), epoch);
            }
            let batch = self.job.batch(epoch, pos)?;
            let ratio = (sweep.end / sweep.start).powf(i as f64 / curve.iterations as f64);
            let lr = sweep.start * ratio;
            let model = self.model.take().expect("model present");
            let stats = match self
                .job
                .step(&mut self.step, model, batch.data, lr * batch.lr_factor)
            {
                Ok((model, stats)) => {
                    self.model = Some(model);
                    stats
                }
                Err(AwdError::Diverged(_)) => break,
                Err(e) => {
                    (self.model, self.step, self.stage) = kept;
                    return Err(e);
                }
            };
            pos = batch.end;
            let loss = smooth.add(stats.loss);
            curve.lrs.push(lr);
            curve.losses.push(loss);
            best = best.min(loss);
            if sweep.stop_div && loss > 4.0 * best {
                break;
            }
        }
        (self.model, self.step, self.stage) = kept;
        Ok(curve)
    }
}
