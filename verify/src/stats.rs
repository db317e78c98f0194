//! Running mean and variance, and the standard errors the Monte Carlo checks
//! are bounded by.

/// Welford's running mean and variance of a sample.
#[derive(Clone, Debug, Default)]
pub struct MeanVar {
    n: u64,
    mean: f64,
    m2: f64,
}

impl MeanVar {
    /// Adds one observation.
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Number of observations.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Sample mean.
    #[must_use]
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Unbiased sample variance (0 with fewer than two observations).
    #[must_use]
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }

    /// Standard error of the mean, `sqrt(variance / n)`.
    #[must_use]
    pub fn std_error(&self) -> f64 {
        if self.n == 0 {
            f64::INFINITY
        } else {
            (self.variance() / self.n as f64).sqrt()
        }
    }

    /// How many standard errors the mean lies from `expected` (0 when both
    /// the gap and the standard error are 0).
    #[must_use]
    pub fn z_score(&self, expected: f64) -> f64 {
        let gap = (self.mean - expected).abs();
        if gap == 0.0 {
            0.0
        } else {
            gap / self.std_error()
        }
    }
}

/// The bound every Monte Carlo check uses: 5 standard errors. For a sample
/// mean that is close to normal, a true claim exceeds it with probability
/// about 6·10⁻⁷ per comparison; draws are seeded, so a run is reproducible.
pub const Z_BOUND: f64 = 5.0;

/// The largest `|mean_i − expected_i|` over components, in standard errors.
#[must_use]
pub fn max_z(stats: &[MeanVar], expected: &[f64]) -> f64 {
    stats
        .iter()
        .zip(expected)
        .map(|(s, &e)| s.z_score(e))
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_variance_of_a_known_sample() {
        let mut m = MeanVar::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            m.push(x);
        }
        assert_eq!(m.mean(), 2.5);
        assert!((m.variance() - 5.0 / 3.0).abs() < 1e-15);
        assert!((m.std_error() - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
        assert!((m.z_score(3.0) - 0.5 / (5.0f64 / 12.0).sqrt()).abs() < 1e-12);
    }
}
