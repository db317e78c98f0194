//! Summaries over seeds: mean, sample standard deviation and Student-t
//! confidence intervals, for tables that say whether a difference between
//! methods is larger than the spread between seeds.

use crate::train::{Result, TrainError};

/// The mean and sample standard deviation of a few measurements (one per
/// seed, typically).
///
/// ```
/// use smoothout_models::analysis::Summary;
///
/// let s = Summary::of(&[98.0, 99.0, 100.0])?;
/// assert_eq!((s.n, s.mean, s.sd), (3, 99.0, 1.0));
/// // 95% interval of the mean: t(0.975, 2 df) = 4.303 standard errors
/// let (lo, hi) = s.ci95()?;
/// assert!((hi - 99.0 - 4.303 / 3f64.sqrt()).abs() < 1e-3 && lo < 99.0);
/// assert!(Summary::of(&[]).is_err());
/// # Ok::<(), smoothout_models::train::TrainError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// How many values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (divisor `n − 1`); 0 for one value.
    pub sd: f64,
}

impl Summary {
    /// The summary of `values`.
    ///
    /// # Errors
    /// [`TrainError::Config`] when `values` is empty or holds a NaN or an
    /// infinity.
    pub fn of(values: &[f64]) -> Result<Summary> {
        if values.is_empty() {
            return Err(TrainError::config("summary", "needs at least one value"));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(TrainError::config(
                "summary",
                format!("the value {v} is not finite"),
            ));
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n < 2 {
            0.0
        } else {
            let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
            (ss / (n - 1) as f64).sqrt()
        };
        Ok(Summary { n, mean, sd })
    }

    /// The two-sided 95% confidence interval of the mean, `mean ± t·sd/√n`
    /// with Student's t for `n − 1` degrees of freedom (which assumes
    /// roughly normal values).
    ///
    /// # Errors
    /// [`TrainError::Config`] for fewer than two values (no spread to
    /// measure).
    pub fn ci95(&self) -> Result<(f64, f64)> {
        let t = t975(self.n.saturating_sub(1))?;
        let half = t * self.sd / (self.n as f64).sqrt();
        Ok((self.mean - half, self.mean + half))
    }
}

/// The 0.975 quantile of Student's t distribution with `df` degrees of
/// freedom (the factor of a two-sided 95% interval): tabulated to three
/// decimals for 1–30, then the normal quantile's Cornish–Fisher expansion
/// in `1/df` (within 10⁻³ of the exact value from 31 on).
///
/// # Errors
/// [`TrainError::Config`] for `df == 0`.
pub fn t975(df: usize) -> Result<f64> {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => Err(TrainError::config(
            "confidence interval",
            "needs at least two values (one degree of freedom)",
        )),
        1..=30 => Ok(TABLE[df - 1]),
        _ => {
            let z: f64 = 1.959_963_984_540_054;
            let n = df as f64;
            let g1 = (z.powi(3) + z) / 4.0;
            let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
            Ok(z + g1 / n + g2 / (n * n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_intervals() {
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert!((s.sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        let one = Summary::of(&[3.5]).unwrap();
        assert_eq!((one.mean, one.sd), (3.5, 0.0));
        assert!(one.ci95().is_err());
        assert!(Summary::of(&[1.0, f64::NAN]).is_err());
        // Known quantiles beyond the table: t(0.975; 40) = 2.021,
        // t(0.975; 120) = 1.980, and the table and the expansion meet at 30/31.
        assert!((t975(40).unwrap() - 2.021).abs() < 1e-3);
        assert!((t975(120).unwrap() - 1.980).abs() < 1e-3);
        assert!((t975(31).unwrap() - 2.040).abs() < 1e-3);
        assert!(t975(0).is_err());
    }
}
