//! The backend a check trains or perturbs on, chosen by a type parameter.
//!
//! The checks that go through the library's [`SmoothOut`](smoothout::SmoothOut)
//! step (checks 1's online form, 4, 5, 6 and 7) are written once, generic
//! over a [`Harness`]: it names the backend type for each element type,
//! builds the backend, and moves buffers between the host (where the checks
//! compute losses and gradients) and the backend. [`RefHarness`] is the core
//! [`Reference`] backend on `Vec<T>`, [`CpuHarness`] the [`Cpu`] backend
//! with two threads on `ndarray` arrays; a CUDA backend needs one more impl.
//!
//! Every backend must give the reference's bits (check 9), so a check body
//! run on any harness must measure exactly what it measures on
//! [`RefHarness`]; the checks' report rows on [`CpuHarness`] assert that
//! ([`agreement_row`]).
//!
//! ```
//! use smoothout::{Config, Draw, Noise, ParamSpec, SmoothOut};
//! use smoothout_verify::harness::{CpuHarness, Harness, RefHarness};
//!
//! fn perturbed<H: Harness>() -> Vec<f64> {
//!     let b = H::backend::<f64>();
//!     let config = Config::new(Noise::uniform(0.1).unwrap()).with_seed(3);
//!     let mut so = SmoothOut::new(&b, config, vec![ParamSpec::bias("b", 5)]).unwrap();
//!     let mut p = vec![H::upload(&b, vec![1.0; 5]).unwrap()];
//!     let g = so.guard(&b, &mut p, Draw::new(0, 0)).unwrap();
//!     H::download(&b, &g[0]).unwrap()
//! }
//! assert_eq!(perturbed::<RefHarness>(), perturbed::<CpuHarness>());
//! ```

use ndarray::{ArrayD, IxDyn};
use smoothout::{Backend, BackendTypes, BufferOps, Error, Real, Reference, Result};
use smoothout_cpu::Cpu;

use crate::Row;

/// A backend family for the checks: the backend for each element type, how
/// to build it, and how buffers reach and leave it.
pub trait Harness {
    /// The backend for element type `T`.
    type Backend<T: Real>: Backend<Elem = T>;

    /// The backend's name in report settings, e.g. `"cpu(2 threads)"`.
    const NAME: &'static str;

    /// Whether this is the core reference. The report's rows were first
    /// written on it alone, so its rows carry no backend tag (see
    /// [`Harness::tag`]).
    const IS_REFERENCE: bool;

    /// A fresh backend for `T`.
    ///
    /// # Panics
    ///
    /// If the backend cannot be built (e.g. no thread pool or no device):
    /// a check cannot run without it.
    fn backend<T: Real>() -> Self::Backend<T>;

    /// A backend buffer holding `v` (a flat buffer of `v.len()` elements).
    fn upload<T: Real>(backend: &Self::Backend<T>, v: Vec<T>) -> Result<Buf<Self, T>>;

    /// `dst ← src` for a buffer of `src.len()` elements.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] if the lengths differ, or the backend's
    /// error.
    fn write<T: Real>(backend: &Self::Backend<T>, src: &[T], dst: &mut Buf<Self, T>) -> Result<()>;

    /// The buffer's elements, copied to the host.
    fn download<T: Real>(backend: &Self::Backend<T>, x: &Buf<Self, T>) -> Result<Vec<T>> {
        backend.to_vec(x)
    }

    /// What a check appends to a row's setting: nothing on the reference,
    /// `"; backend=NAME"` otherwise.
    #[must_use]
    fn tag() -> String {
        if Self::IS_REFERENCE {
            String::new()
        } else {
            format!("; backend={}", Self::NAME)
        }
    }
}

/// The buffer type of harness `H` for element type `T`.
pub type Buf<H, T> = <<H as Harness>::Backend<T> as BackendTypes>::Buffer;

fn same_len(expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what: "harness write destination",
            expected,
            actual,
        })
    }
}

/// The core [`Reference`] backend on `Vec<T>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RefHarness;

impl Harness for RefHarness {
    type Backend<T: Real> = Reference<T>;
    const NAME: &'static str = "reference";
    const IS_REFERENCE: bool = true;

    fn backend<T: Real>() -> Reference<T> {
        Reference::new()
    }

    fn upload<T: Real>(_: &Reference<T>, v: Vec<T>) -> Result<Vec<T>> {
        Ok(v)
    }

    fn write<T: Real>(_: &Reference<T>, src: &[T], dst: &mut Vec<T>) -> Result<()> {
        same_len(dst.len(), src.len())?;
        dst.copy_from_slice(src);
        Ok(())
    }
}

/// Worker threads of [`CpuHarness`]'s backend.
pub const CPU_THREADS: usize = 2;

/// The [`Cpu`] backend with [`CPU_THREADS`] threads (default chunking and
/// detected instruction set) on 1-D [`ArrayD`] buffers.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuHarness;

impl Harness for CpuHarness {
    type Backend<T: Real> = Cpu<T>;
    const NAME: &'static str = "cpu(2 threads)";
    const IS_REFERENCE: bool = false;

    fn backend<T: Real>() -> Cpu<T> {
        Cpu::with_threads(CPU_THREADS).expect("a CPU backend with two threads")
    }

    fn upload<T: Real>(_: &Cpu<T>, v: Vec<T>) -> Result<ArrayD<T>> {
        let n = v.len();
        Ok(ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("a 1-D shape always fits"))
    }

    fn write<T: Real>(_: &Cpu<T>, src: &[T], dst: &mut ArrayD<T>) -> Result<()> {
        same_len(dst.len(), src.len())?;
        dst.as_slice_mut()
            .ok_or(Error::NonContiguous)?
            .copy_from_slice(src);
        Ok(())
    }
}

/// Uploads every host buffer of `params`.
///
/// # Errors
///
/// The backend's error.
pub fn upload_all<H: Harness, T: Real>(
    backend: &H::Backend<T>,
    params: &[Vec<T>],
) -> Result<Vec<Buf<H, T>>> {
    params
        .iter()
        .map(|p| H::upload(backend, p.clone()))
        .collect()
}

/// Downloads every buffer of `params`.
///
/// # Errors
///
/// The backend's error.
pub fn download_all<H: Harness, T: Real>(
    backend: &H::Backend<T>,
    params: &[Buf<H, T>],
) -> Result<Vec<Vec<T>>> {
    params.iter().map(|p| H::download(backend, p)).collect()
}

/// The number of bits in which `a` and `b` differ, element by element
/// (`None` if their lengths differ).
#[must_use]
pub fn differing_bits(a: &[f64], b: &[f64]) -> Option<u64> {
    (a.len() == b.len()).then(|| {
        a.iter()
            .zip(b)
            .map(|(x, y)| u64::from((x.to_bits() ^ y.to_bits()).count_ones()))
            .sum()
    })
}

/// A row asserting that rows computed on another backend measured exactly
/// what the same rows measured on the reference: the total number of
/// differing bits of the paired measured values (bound 0). `reference` and
/// `other` are paired in order; `pairing` says in the setting where the
/// reference rows are (e.g. "the reference rows above"). A different number
/// of rows, or none, fails (measured NaN).
#[must_use]
pub fn agreement_row(
    check: &'static str,
    backend: &str,
    reference: &[Row],
    other: &[Row],
    pairing: &str,
) -> Row {
    let measured = |rows: &[Row]| rows.iter().map(|r| r.measured).collect::<Vec<_>>();
    let bits = match differing_bits(&measured(reference), &measured(other)) {
        Some(b) if !other.is_empty() => b as f64,
        _ => f64::NAN,
    };
    Row::at_most(
        check,
        format!("backend={backend} measures what the reference measures: differing bits of the measured values"),
        "backend contract",
        format!(
            "the {} rows above with backend={backend}, each paired with the same row on the reference ({pairing})",
            other.len(),
        ),
        bits,
        0.0,
    )
}

/// Appends [`CpuHarness`]'s rows of the cases at `indices` (`cpu(i)` for
/// case `i`), then the [`agreement_row`] pairing them with the reference
/// rows of the same cases (`reference[i]` holds case `i`'s); `pairing` as
/// there.
pub fn push_cpu_cases(
    rows: &mut Vec<Row>,
    check: &'static str,
    reference: &[Vec<Row>],
    indices: &[usize],
    cpu: impl Fn(usize) -> Vec<Row>,
    pairing: &str,
) {
    let cpu: Vec<Row> = indices.iter().flat_map(|&i| cpu(i)).collect();
    let paired: Vec<Row> = indices
        .iter()
        .flat_map(|&i| reference[i].iter().cloned())
        .collect();
    let agree = agreement_row(check, CpuHarness::NAME, &paired, &cpu, pairing);
    rows.extend(cpu);
    rows.push(agree);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both harnesses move buffers faithfully, refuse a write of the wrong
    /// length, and the CPU one has the threads its name says.
    fn round_trip<H: Harness>() {
        let b = H::backend::<f32>();
        let mut x = H::upload(&b, vec![1.5f32, -0.0, 3.25]).unwrap();
        H::write(&b, &[2.0, 4.0, -8.5], &mut x).unwrap();
        assert_eq!(H::download(&b, &x).unwrap(), [2.0, 4.0, -8.5]);
        assert!(H::write(&b, &[1.0], &mut x).is_err());
    }

    #[test]
    fn harnesses_round_trip() {
        round_trip::<RefHarness>();
        round_trip::<CpuHarness>();
        assert_eq!(CpuHarness::backend::<f64>().threads(), CPU_THREADS);
        assert_eq!(CpuHarness::NAME, format!("cpu({CPU_THREADS} threads)"));
        assert_eq!(RefHarness::tag(), "");
        assert_eq!(CpuHarness::tag(), "; backend=cpu(2 threads)");
    }
}
