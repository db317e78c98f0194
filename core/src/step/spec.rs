//! Parameter specs: what each buffer is and whether it is perturbed.

use alloc::string::String;
use alloc::vec::Vec;

/// What a parameter does in its layer; decides the default for perturbation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A Linear or Conv weight (perturbed by default).
    Weight,
    /// A Linear or Conv bias (perturbed by default).
    Bias,
    /// A normalisation scale or shift, e.g. BatchNorm's γ and β (not perturbed
    /// by default, as in the authors' code).
    Normalization,
}

/// One parameter buffer: its name, shape, role and whether noise touches it.
///
/// Row structure for [`crate::Scaling::FilterNorm`]: dim 0 indexes rows, the
/// other dimensions are flattened into columns; a 1-D (or 0-D) parameter is
/// rows of one element.
///
/// ```
/// use smoothout::{ParamSpec, Role};
/// let w = ParamSpec::weight("conv1.weight", [64, 3, 5, 5]);
/// assert_eq!((w.rows(), w.cols(), w.len()), (64, 75, 4800));
/// let g = ParamSpec::normalization("bn1.weight", 64);
/// assert!(!g.perturbed && g.role == Role::Normalization);
/// assert!(g.clone().with_perturbed(true).perturbed);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// A name for messages and checkpoints.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// What the parameter does.
    pub role: Role,
    /// Whether SmoothOut perturbs it.
    pub perturbed: bool,
}

impl ParamSpec {
    /// A spec with the role's default for `perturbed`.
    pub fn new(name: impl Into<String>, shape: impl AsRef<[usize]>, role: Role) -> Self {
        ParamSpec {
            name: name.into(),
            shape: shape.as_ref().to_vec(),
            role,
            perturbed: role != Role::Normalization,
        }
    }

    /// A weight.
    pub fn weight(name: impl Into<String>, shape: impl AsRef<[usize]>) -> Self {
        Self::new(name, shape, Role::Weight)
    }

    /// A 1-D bias of `len` elements.
    pub fn bias(name: impl Into<String>, len: usize) -> Self {
        Self::new(name, [len], Role::Bias)
    }

    /// A 1-D normalisation parameter of `len` elements.
    pub fn normalization(name: impl Into<String>, len: usize) -> Self {
        Self::new(name, [len], Role::Normalization)
    }

    /// The same spec with `perturbed` overridden.
    #[must_use]
    pub fn with_perturbed(mut self, perturbed: bool) -> Self {
        self.perturbed = perturbed;
        self
    }

    /// Number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the spec has no elements (a zero-sized dimension).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements per row: the product of all dimensions but the first (1 for
    /// 0-D and 1-D parameters).
    #[must_use]
    pub fn cols(&self) -> usize {
        if self.shape.len() <= 1 {
            1
        } else {
            self.shape[1..].iter().product()
        }
    }

    /// Number of rows: `len / cols`.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.len() / self.cols().max(1)
    }
}
