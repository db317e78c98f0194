//! Typed errors: what was wrong, and what to do about it.

use core::fmt;

/// Every way a SmoothOut call can refuse its input.
///
/// The `Display` text names the offending value and the fix.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A noise strength (`a` of a uniform, `std` of a Gaussian) that is
    /// negative, NaN or infinite.
    InvalidStrength {
        /// Which strength: `"a"` or `"std"`.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A Bernoulli probability outside `[0, 1]` (or NaN).
    InvalidProbability {
        /// The value given.
        p: f64,
    },
    /// A schedule or optimiser setting outside its domain.
    InvalidSetting {
        /// The setting, e.g. `"anneal index"`, `"momentum"`.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The domain it must lie in, in words.
        expected: &'static str,
    },
    /// No parameters, or no perturbed parameters, were given.
    EmptyParameterSet,
    /// A parameter spec with a zero-sized dimension.
    EmptyParameter {
        /// Index of the parameter in the set.
        param: usize,
    },
    /// Two parameters of one set were given the same id, so they would get
    /// the same noise.
    DuplicateId {
        /// The id.
        id: u64,
        /// Index of the first parameter holding it.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// Two things that must have equal lengths do not.
    LengthMismatch {
        /// What was being compared, e.g. `"gradient buffers"`.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// A parameter buffer does not hold as many elements as its spec says.
    ShapeMismatch {
        /// Index of the parameter in the set.
        param: usize,
        /// Elements its spec implies.
        expected: usize,
        /// Elements of the buffer.
        actual: usize,
    },
    /// The chosen noise cannot be undone by regenerating it; the exact mode,
    /// which keeps a copy of the parameters, is needed.
    NotRegenerable {
        /// Why regeneration cannot recover the weights.
        reason: &'static str,
    },
    /// `perturb` was called while a perturbation was still applied.
    AlreadyPerturbed,
    /// `denoise` (or a fused update) was called with no perturbation applied.
    NotPerturbed,
    /// The de-noise was asked for a different draw than the one applied.
    DrawMismatch,
    /// A buffer is not contiguous in memory (backend-specific layouts).
    NonContiguous,
    /// A device backend's call failed (a kernel launch, a copy, an
    /// allocation, a cuBLAS call): which operation, and the device API's
    /// error name and code.
    Device {
        /// The backend operation that failed (`"perturb"`, `"gemm"`, …).
        op: &'static str,
        /// The device API's name for the error (`"CUDA_ERROR_OUT_OF_MEMORY"`).
        name: &'static str,
        /// The device API's numeric error code.
        code: i64,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidStrength { name, value } => write!(
                f,
                "noise strength {name} = {value} is invalid: it must be finite and >= 0 \
                 (0 turns the noise off)"
            ),
            Error::InvalidProbability { p } => write!(
                f,
                "Bernoulli probability p = {p} is invalid: it must lie in [0, 1]"
            ),
            Error::InvalidSetting {
                name,
                value,
                expected,
            } => write!(f, "{name} = {value} is invalid: it must be {expected}"),
            Error::EmptyParameterSet => write!(
                f,
                "the parameter set is empty (or nothing in it is perturbed): \
                 pass at least one parameter spec with perturbed = true"
            ),
            Error::EmptyParameter { param } => write!(
                f,
                "parameter {param} has a zero-sized dimension: remove it from the set"
            ),
            Error::DuplicateId { id, first, second } => write!(
                f,
                "parameters {first} and {second} have the same id {id:#018x}, so they would \
                 get the same noise: give every parameter its own id (e.g. param_id of its name)"
            ),
            Error::LengthMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what}: expected {expected}, got {actual}; pass one entry per parameter spec"
            ),
            Error::ShapeMismatch {
                param,
                expected,
                actual,
            } => write!(
                f,
                "parameter {param} holds {actual} elements but its spec's shape has {expected}: \
                 the buffers must be passed in spec order"
            ),
            Error::NotRegenerable { reason } => write!(
                f,
                "this noise cannot be removed by regenerating it ({reason}); \
                 use Denoise::Exact, which keeps a copy of the perturbed parameters"
            ),
            Error::AlreadyPerturbed => write!(
                f,
                "the parameters are already perturbed: de-noise the current draw first"
            ),
            Error::NotPerturbed => write!(
                f,
                "the parameters are not perturbed: call perturb before de-noising"
            ),
            Error::DrawMismatch => write!(
                f,
                "de-noise asked for a different draw than the one applied: \
                 pass the same Draw to perturb and denoise"
            ),
            Error::NonContiguous => write!(
                f,
                "a buffer is not contiguous in standard (row-major) order: \
                 make it contiguous (e.g. `as_standard_layout().into_owned()`) first"
            ),
            Error::Device { op, name, code } => write!(
                f,
                "the device failed in {op}: {name} (code {code}); out of memory means a \
                 smaller batch, anything else a driver or hardware problem (check `nvidia-smi`)"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// `Ok` when `actual == expected`, otherwise [`Error::LengthMismatch`].
pub fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}
