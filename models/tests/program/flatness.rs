//! The main command's flatness table and picture, and `eval --hessian`,
//! run as a user runs them.

use crate::support::program::{scratch, smoothout, train_baseline_one_epoch, SMALL};

/// The number after `key` in `text` (up to the next space or comma).
fn number_after(text: &str, key: &str) -> f64 {
    let rest = text
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("`{key}` not in {text}"));
    let token: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | '+'))
        .collect();
    token
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{key}` in {text}"))
}

fn run_line<'a>(stderr: &'a str, run: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.starts_with(&format!("{run}: λ_max ")))
        .unwrap_or_else(|| panic!("no measurement line for {run} in {stderr}"))
}

#[test]
fn train_measures_every_seed_and_eval_agrees() {
    let out = scratch("flat");
    let o = out.to_str().unwrap();
    let (ok, table, train_err) = smoothout(&[
        "train",
        "--net",
        "mlp-16",
        "--epochs",
        "2",
        "--seed",
        "0,1",
        "--measure-examples",
        "300",
        "--threads",
        "2",
        "--quiet",
        "--out",
        o,
    ]);
    assert!(ok, "{train_err}");
    for want in [
        "λ_max",
        "trace",
        "baseline",
        "adasmoothout",
        "paired by seed",
        "95% interval",
        "adasmoothout below baseline on the same seed — λ_max: ",
        "on the first 300 training images",
    ] {
        assert!(table.contains(want), "the table lacks {want}: {table}");
    }
    // Both methods' rows give two seeds.
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            matches!(w.next(), Some("baseline" | "adasmoothout"))
                && w.next().is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows
        .iter()
        .all(|r| r.split_whitespace().nth(1) == Some("2")));

    // The picture and its numbers: one curve per method, over its seeds.
    let png = out.join("digits-flatness.png");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(table.contains(png.to_str().unwrap()), "{table}");
    let csv = std::fs::read_to_string(out.join("digits-flatness.csv")).unwrap();
    for method in [
        "baseline (mean of 2 seeds)",
        "adasmoothout (mean of 2 seeds)",
    ] {
        assert!(csv.contains(method), "{csv}");
    }

    // `eval --hessian` on a run measures the same λ_max, trace and s as
    // training did (same images, seed and settings).
    let run = out.join("digits-mlp-16-adasmoothout-seed1");
    let (ok, said, err) = smoothout(&[
        "eval",
        run.to_str().unwrap(),
        "--hessian",
        "--examples",
        "300",
        "--top",
        "2",
        "--threads",
        "2",
    ]);
    assert!(ok, "{err}");
    assert!(said.contains("λ_2 = "), "{said}");
    let line = run_line(&train_err, "digits-mlp-16-adasmoothout-seed1");
    // Printed to 4 (eval) and 3 (train) decimals: equal to the coarser.
    let close = |a: f64, b: f64, half_unit: f64| (a - b).abs() <= half_unit * 1.0001;
    let (l_eval, l_train) = (number_after(&said, "λ_1 = "), number_after(line, "λ_max"));
    assert!(close(l_eval, l_train, 5e-4 + 5e-5), "{said} vs {line}");
    let (t_eval, t_train) = (number_after(&said, "trace = "), number_after(line, "trace"));
    assert!(close(t_eval, t_train, 0.05 + 5e-4), "{said} vs {line}");
    let (s_eval, s_train) = (number_after(&said, "\ns = "), number_after(line, ", s"));
    assert!(close(s_eval, s_train, 5e-4 + 5e-5), "{said} vs {line}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn seeds_and_measurement_options_are_checked() {
    let (ok, _, err) = smoothout(&["train", "--seed", "0,0"]);
    assert!(
        !ok && err.contains("--seed") && err.contains("twice"),
        "{err}"
    );
    let (ok, _, err) = smoothout(&["train", "--measure-examples", "0"]);
    assert!(!ok && err.contains("--measure-examples"), "{err}");
    let (ok, _, err) = smoothout(&["eval", "nowhere", "--hessian", "--top", "0"]);
    assert!(!ok && !err.contains("panicked"), "{err}");
    // The Hessian settings' errors name the program's flags.
    let out = scratch("flags");
    let (ok, _, err) = smoothout(
        &[
            &["train", "--method", "baseline"][..],
            &SMALL,
            &["--out", out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    let run = out.join("digits-mlp-16-baseline-seed0");
    for (flag, value) in [
        ("--lanczos-steps", "0"),
        ("--trace-samples", "1"),
        ("--hvp-step", "0"),
    ] {
        let (ok, _, err) = smoothout(&["eval", run.to_str().unwrap(), "--hessian", flag, value]);
        assert!(
            !ok && err.contains(&format!("invalid {flag}")),
            "{flag} {value}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn the_digits_default_is_three_seeds() {
    let out = scratch("three");
    let (ok, table, err) = train_baseline_one_epoch(&["--no-measure"], &out);
    assert!(ok, "{err}");
    for seed in 0..3 {
        let run = format!("digits-mlp-16-baseline-seed{seed}");
        assert!(out.join(&run).join("checkpoint.safetensors").exists());
        assert!(table.contains(&run), "{table}");
    }
    assert!(!table.contains("λ_max"), "--no-measure measured: {table}");
    let _ = std::fs::remove_dir_all(out);
}
