//! `awd bench p1|p2|clas`: training-step, evaluation and generation speed of the real model (and
//! with `--roofline` each product of the step against the machine's measured peak).

use crate::bench::roofline::{self, Roofline};
use crate::bench::{self, PRESET};
use crate::device;
use crate::kernels::PrecisionChoice;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Config {
    P1,
    P2,
    /// The text classifier's training step at fastai's default sizes.
    Clas,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// p1 (V10k E200 H512 L2 B32 T35), p2 (V10k E400 H1152 L3 B32 T70, AWD-LSTM), or clas (the
    /// text classifier: V10k E400 H1152 L3, 64 documents of 250 tokens).
    #[arg(value_enum)]
    pub config: Config,
    /// Timed training steps (after one warm-up).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Also time evaluation and batch-1 generation.
    #[arg(long)]
    pub all: bool,
    /// Also run `awd train` itself on random tokens and report its loop's speed beside the step's
    /// (three alternated runs of each, medians).
    #[arg(long = "loop")]
    pub train_loop: bool,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The products' operands: f32, bf16 with f32 sums, or auto (bf16 where it is faster here).
    #[arg(long, value_enum, default_value_t)]
    pub precision: PrecisionChoice,
    /// Also measure this machine's peak for the step's precision (f32 FMAs; with bf16, the AMX
    /// tiles or AVX512-BF16) and each product of the step against it, and say what
    /// share of the peak the whole step reaches.
    #[arg(long)]
    pub roofline: bool,
}

/// Length of the classifier benchmark's documents (tokens).
const CLAS_DOC_LEN: usize = 250;

fn clas(args: &BenchArgs, device: &crate::device::Device) -> anyhow::Result<bool> {
    let mut cfg = bench::clas_config();
    cfg.precision = args.precision;
    let steps = args.steps.unwrap_or(3).max(1);
    let m = &cfg.model;
    println!(
        "clas: vocab {} emb {} hidden {} layers {} head [{}, {}, 2], batch {} of documents of {CLAS_DOC_LEN} \
         tokens in chunks of {}; AdamW, AR {} TAR {}, dropouts x{}, every group unfrozen; {steps} steps on {}",
        bench::VOCAB,
        m.emb_size,
        m.hidden_size,
        m.n_layers,
        3 * m.emb_size,
        cfg.lin_ftrs,
        cfg.batch_size,
        cfg.bptt,
        cfg.optim.alpha,
        cfg.optim.beta,
        cfg.drop_mult,
        args.device
    );
    let t = bench::clas(&cfg, CLAS_DOC_LEN, steps, device)?;
    println!(
        "train    {:.1} ms/step  {:.0} tokens/s",
        t.ms_per_step, t.tokens_per_s
    );
    println!(
        "train clas tokens_per_s={:.0} peak_rss_mb={:.0}",
        t.tokens_per_s,
        bench::peak_rss_mb()
    );
    if args.roofline {
        let shapes = roofline::clas_shapes(&cfg, CLAS_DOC_LEN);
        let tokens = cfg.batch_size * CLAS_DOC_LEN;
        let r = Roofline::measure(cfg.precision.resolve(), shapes, tokens);
        report("clas", &r, t.ms_per_step);
    }
    Ok(true)
}

pub fn run(args: BenchArgs) -> anyhow::Result<bool> {
    let device = device::select(&args.device)?;
    super::note_precision(args.precision, &device);
    let (name, mut cfg, default_steps) = match args.config {
        Config::P1 => ("p1", bench::p1(), 10),
        Config::P2 => ("p2", bench::p2(), 3),
        Config::Clas => return clas(&args, &device),
    };
    cfg.precision = args.precision;
    let steps = args.steps.unwrap_or(default_steps).max(1);
    let m = &cfg.model;
    println!(
        "{name}: vocab {} emb {} hidden {} layers {} batch {} bptt {}; preset {PRESET:?}'s step: \
         {:?} (lr {}, betas {}/{}, eps {}, weight decay {}), clip {}, AR {} TAR {}, its dropouts; \
         {steps} steps on {}, {:?} products",
        bench::VOCAB,
        m.emb_size,
        m.hidden_size,
        m.n_layers,
        cfg.batch_size,
        cfg.bptt,
        cfg.optim.optimizer,
        cfg.lr,
        cfg.optim.beta1,
        cfg.optim.beta2,
        cfg.optim.eps,
        cfg.optim.weight_decay,
        cfg.optim.clip,
        cfg.optim.alpha,
        cfg.optim.beta,
        args.device,
        cfg.precision
    );
    if args.all {
        let e = bench::eval(&cfg, steps, &device)?;
        println!(
            "eval     {:.1} ms/batch  {:.0} tokens/s",
            e.ms_per_step, e.tokens_per_s
        );
        let g = bench::generate(&cfg, 200, &device)?;
        println!(
            "generate {:.2} ms/token  {:.0} tokens/s (batch 1)",
            g.ms_per_step, g.tokens_per_s
        );
    }
    let t = bench::train(&cfg, steps, &device)?;
    println!(
        "train    {:.1} ms/step  {:.0} tokens/s",
        t.ms_per_step, t.tokens_per_s
    );
    // Before the loop, which builds a second model in this process.
    let peak_rss = bench::peak_rss_mb();
    if args.roofline {
        let shapes = roofline::step_shapes(&cfg, bench::VOCAB);
        let tokens = cfg.batch_size * cfg.bptt;
        let r = Roofline::measure(cfg.precision.resolve(), shapes, tokens);
        report(name, &r, t.ms_per_step);
    }
    if args.train_loop {
        // Loop and step alternate, three times each, and each is read at its median: a shared
        // machine drifts by more than the difference being measured.
        let (mut loops, mut step_ms) = (Vec::new(), vec![t.ms_per_step]);
        for round in 0..3 {
            loops.push(bench::train_loop(&cfg, steps, &device)?.ms_per_step);
            if round < 2 {
                step_ms.push(bench::train(&cfg, steps, &device)?.ms_per_step);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (l, s) = (median(&mut loops), median(&mut step_ms));
        let tokens = (cfg.batch_size * cfg.bptt) as f64;
        println!(
            "loop     {l:.1} ms/step  {:.0} tokens/s  ({:+.1}% over the step's {s:.1} ms; medians of 3 alternated runs each)",
            tokens / l * 1e3,
            100.0 * (l / s - 1.0)
        );
    }
    println!(
        "train {name} tokens_per_s={:.0} peak_rss_mb={:.0}",
        t.tokens_per_s, peak_rss
    );
    Ok(true)
}

/// The machine's peak, each product of the step against it, and the whole step of `step_ms`.
fn report(name: &str, r: &Roofline, step_ms: f64) {
    let p = &r.peak;
    println!(
        "peak     {:.1} GFLOP/s {}: {} threads x {:.1}, measured with {} multiply-add chains; \
         elementwise kernels on {}",
        p.gflops,
        precision_name(r.precision),
        p.threads,
        p.per_core,
        p.isa,
        crate::kernels::math::simd().name()
    );
    println!(
        "{:34} {:>6} {:>6} {:>6} {:>6} {:>8} {:>7} {:>8}",
        format!("product (awd's {} products)", precision_name(r.precision)),
        "m",
        "n",
        "k",
        "x/step",
        "GFLOP/s",
        "peak",
        "ms/step"
    );
    for (s, g) in &r.products {
        println!(
            "{:34} {:6} {:6} {:6} {:6} {:8.1} {:6.1}% {:8.2}",
            s.what,
            s.m,
            s.n,
            s.k,
            s.count,
            g,
            100.0 * g / p.gflops,
            s.flops() / g / 1e6
        );
    }
    let (gflops, share) = r.step(step_ms);
    let products_ms = r.products_ms();
    let at_peak_ms = r.step_flops() / p.gflops / 1e6;
    println!(
        "step     {:.1} MFLOP a token in products; {step_ms:.1} ms a step: {gflops:.1} GFLOP/s, {:.1}% of the peak",
        r.step_flops() / r.tokens_per_step as f64 / 1e6,
        100.0 * share
    );
    println!(
        "         the products alone, at the speeds above: {products_ms:.1} ms ({:.1}% of the peak); \
         at the peak: {at_peak_ms:.1} ms; the step's other work and overhead: {:.1} ms ({:.1}%)",
        100.0 * at_peak_ms / products_ms,
        step_ms - products_ms,
        100.0 * (step_ms - products_ms) / step_ms
    );
    println!(
        "roofline {name} peak_gflops={:.1} step_share={:.3} products_share={:.3}",
        p.gflops,
        share,
        at_peak_ms / products_ms
    );
}

fn precision_name(p: crate::kernels::Precision) -> &'static str {
    match p {
        crate::kernels::Precision::F32 => "f32",
        crate::kernels::Precision::Bf16 => "bf16",
    }
}
