//! The quadratic model at an iterate, which steps 1 and 2 minimise.

use super::bounds::Bounds;
use super::memory::Memory;

/// The model `m(x + d) = f + gᵀd + ½ dᵀBd` at the iterate `x` with
/// gradient `g`, `B` the compact L-BFGS matrix of `mem`, over the box
/// `bounds`: what the Cauchy point (step 1) and the subspace minimisation
/// (step 2) work on.
#[derive(Clone, Copy)]
pub(super) struct Model<'a> {
    pub(super) x: &'a [f64],
    pub(super) g: &'a [f64],
    pub(super) bounds: &'a Bounds<'a>,
    pub(super) mem: &'a Memory,
}
