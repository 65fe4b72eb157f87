//! `awd bench --roofline`: the machine's measured peak, every product of the step against it,
//! and the whole step's share of it.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_awd"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap()
}

/// `awd bench <config> --roofline`: `products` product lines, and the step's and the products'
/// shares of the peak in its last line.
fn check_roofline(config: &str, products: usize) {
    let out = bench(&[config, "--steps", "1", "--roofline"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout
        .lines()
        .filter(|l| l.starts_with("lstm") || l.starts_with("decoder"));
    assert_eq!(lines.count(), products, "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("roofline {config} ")))
        .unwrap_or_else(|| panic!("no roofline line in {stdout}"));
    let field = |name: &str| -> f64 {
        let v = line
            .split(' ')
            .find_map(|kv| kv.strip_prefix(name))
            .unwrap();
        v.parse().unwrap()
    };
    assert!(field("peak_gflops=") > 0.0);
    // A step or a product above the FMA peak would mean a miscounted peak or step. (Checked here,
    // in a process of its own, one at a time: beside other work the peak would be measured on
    // shared cores.)
    for name in ["step_share=", "products_share="] {
        let share = field(name);
        assert!(share > 0.0 && share < 1.15, "{name}{share}: {stdout}");
    }
}

/// One test, so the two runs never measure the peak at the same time.
#[test]
fn the_roofline_holds_each_product_and_the_step_against_the_measured_peak() {
    // P1: 2 layers x 6 products, and the decoder's 3.
    check_roofline("p1", 15);
    // The classifier: 3 layers x (4 window products for the chunks of 72 and for the last one
    // of 34, and the 2 per-step ones); no decoder.
    check_roofline("clas", 30);
}
