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

#[test]
fn the_roofline_holds_each_product_and_the_step_against_the_measured_peak() {
    let out = bench(&["p1", "--steps", "1", "--roofline"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // P1: 2 layers x 6 products, and the decoder's 3.
    let products = stdout
        .lines()
        .filter(|l| l.starts_with("lstm") || l.starts_with("decoder"));
    assert_eq!(products.count(), 15, "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("roofline p1 "))
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
    // in a process of its own: beside other tests in one process the peak would be measured on
    // shared cores.)
    for name in ["step_share=", "products_share="] {
        let share = field(name);
        assert!(share > 0.0 && share < 1.15, "{name}{share}: {stdout}");
    }
}

#[test]
fn the_classifier_has_no_roofline_and_says_so() {
    let out = bench(&["clas", "--roofline"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(stderr.contains("--roofline"), "{stderr}");
}
