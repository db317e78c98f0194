//! Helpers shared by the workspace's tests and benches, written once: the
//! SplitMix64 generator behind their synthetic data, the medians their
//! timing tables print, and the process's peak resident memory.
//!
//! No dependencies, so that any test or bench can use it as a
//! dev-dependency without building more.

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: two multiply-xorshift rounds.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 as a sequence: the state steps by the golden increment and
/// each output is [`mix`] of the new state. `SplitMix64(seed)` starts it.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `[-1, 1)` with 24 bits: the top 24 bits of
    /// [`next_u64`](Self::next_u64) over `2^23`, minus one.
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    /// Uniform in `[0, 1)` with 53 bits: the top 53 bits over `2^53`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[-1, 1)` with 53 bits: `2 · next_f64 − 1`.
    pub fn signed(&mut self) -> f64 {
        self.next_f64() * 2.0 - 1.0
    }

    /// `n` random bytes, each the top 8 bits of one output: the pixels of
    /// a synthetic dataset.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }

    /// A synthetic batch of `n` examples of `image_len` inputs, already
    /// "normalised" (zero mean, unit-ish spread: `1.7 ·`
    /// [`unit`](Self::unit)), then its `n` labels (`next_u64 % classes`).
    pub fn batch(&mut self, n: usize, image_len: usize, classes: usize) -> (Vec<f32>, Vec<u32>) {
        let x = (0..n * image_len).map(|_| self.unit() * 1.7).collect();
        let y = (0..n)
            .map(|_| (self.next_u64() % classes as u64) as u32)
            .collect();
        (x, y)
    }
}

/// SplitMix64 as a hash: the output for state `z` (`z` plus the golden
/// increment, then [`mix`]), so that element `i` of a tensor does not
/// depend on how many came before it.
pub fn hash(z: u64) -> u64 {
    mix(z.wrapping_add(GOLDEN))
}

/// The median of `v`: the middle value, or the mean of the two middle
/// values when `v` has an even length; NaN when `v` is empty. NaNs in `v`
/// sort as [`f64::total_cmp`] orders them.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The smallest and the largest of the times `v` (in the order of
/// `f64::min` and `f64::max`): `∞` and `0` when `v` is empty.
pub fn time_range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    (lo, hi)
}

/// The upper median of `v`: element `len / 2` once sorted (for an even
/// length the larger of the two middle values, not their mean); NaN when
/// `v` is empty.
pub fn upper_median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The cells a step bench's table row starts with, as `| … |`: the batch,
/// the method, the median ms per step of `ms`, its fastest–slowest range,
/// images per second at the median, and the median of `ratios` (to the
/// baseline).
pub fn timing_cells(batch: usize, method: &str, ms: &[f64], ratios: &[f64]) -> String {
    let med = median(ms);
    let (lo, hi) = time_range(ms);
    format!(
        "| {batch} | {method} | {med:.2} | {lo:.2}–{hi:.2} | {:.0} | {:.3} |",
        batch as f64 * 1e3 / med,
        median(ratios)
    )
}

/// The process's peak resident memory in KiB (`VmHWM` of
/// `/proc/self/status`), where Linux reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `[a, b, …]` with six decimals: a JSON list of figures.
pub fn json_list(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
    format!("[{}]", items.join(", "))
}

/// Writes `body` to `path`, creating its folder, when a path is given (a
/// bench's `--json PATH`); nothing otherwise.
pub fn write_json(path: Option<&std::path::Path>, body: &str) -> std::io::Result<()> {
    if let Some(p) = path {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, body)?;
    }
    Ok(())
}

/// A JSON string literal (names and error messages only).
pub fn json_str(s: &str) -> String {
    use std::fmt::Write as _;
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A GPU bench's exit when there is no GPU: says why on stdout and writes
/// the record `{"skipped": reason}` to `path` (see [`write_json`]).
pub fn write_skipped(path: Option<&std::path::Path>, reason: &str) -> std::io::Result<()> {
    println!("skipped: {reason}");
    write_json(path, &format!("{{\"skipped\": {}}}\n", json_str(reason)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_cells_are_the_table_row_start() {
        assert_eq!(
            timing_cells(32, "baseline", &[2.0, 1.0, 4.0], &[1.5]),
            "| 32 | baseline | 2.00 | 1.00–4.00 | 16000 | 1.500 |"
        );
    }

    #[test]
    fn json_str_escapes_quotes_backslashes_and_control_characters() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn splitmix64_reference_outputs() {
        // The first outputs of SplitMix64 seeded with 1234567 (Vigna's
        // reference implementation).
        let mut g = SplitMix64(1234567);
        assert_eq!(g.next_u64(), 6457827717110365317);
        assert_eq!(g.next_u64(), 3203168211198807973);
        assert_eq!(g.next_u64(), 9817491932198370423);
        // The hash of a state is the sequence's next output from it.
        assert_eq!(hash(1234567), 6457827717110365317);
    }

    #[test]
    fn medians() {
        assert!(median(&[]).is_nan());
        assert!(upper_median(&[]).is_nan());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(upper_median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(upper_median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
