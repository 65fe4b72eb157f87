//! One benchmark phase alone, for a profiler: `perf record --call-graph dwarf target/release/examples/profile_target gen|eval|train p1|p2 [steps] [f32|bf16|auto]`.
//! (Build with `CARGO_PROFILE_RELEASE_DEBUG=line-tables-only` for source lines.)
fn main() {
    awd::alloc::tune();
    let what = std::env::args().nth(1).unwrap();
    let p = std::env::args().nth(2).unwrap_or("p1".into());
    let n: usize = std::env::args()
        .nth(3)
        .map(|s| s.parse().unwrap())
        .unwrap_or(5);
    let mut s = if p == "p1" {
        awd::bench::p1()
    } else {
        awd::bench::p2()
    };
    if let Some(precision) = std::env::args().nth(4) {
        s.precision = clap::ValueEnum::from_str(&precision, true).unwrap();
    }
    let dev = awd::device::select("cpu").unwrap();
    let t = match what.as_str() {
        "gen" => awd::bench::generate(&s, n, &dev).unwrap(),
        "eval" => awd::bench::eval(&s, n, &dev).unwrap(),
        _ => awd::bench::train(&s, n, &dev).unwrap(),
    };
    println!(
        "{what} {p} {:.2} ms/step {:.0} tok/s",
        t.ms_per_step, t.tokens_per_s
    );
}
