//! The landscape example as a check: from the same start in the sharp basin,
//! plain SGD stays there and SmoothOut ends in the flat basin.

#[allow(dead_code)] // `main` is the example's
#[path = "../examples/landscape.rs"]
mod landscape;

use landscape::{basin, run, settle, START};

#[test]
fn smoothout_leaves_the_sharp_minimum_plain_sgd_does_not() -> smoothout::Result<()> {
    let (flat, sharp) = (settle(0.5), settle(START));
    assert!(
        flat.abs() < 1e-6 && (sharp - 1.085).abs() < 1e-3,
        "minima {flat}, {sharp}"
    );
    let (sgd, smooth) = run(1_000)?;
    assert_eq!(basin(sgd), "sharp", "plain SGD ended at {sgd}");
    assert!(
        (sgd - sharp).abs() < 1e-3,
        "plain SGD ended at {sgd}, not at {sharp}"
    );
    assert_eq!(basin(smooth), "flat", "SmoothOut ended at {smooth}");
    Ok(())
}
