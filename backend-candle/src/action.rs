//! The two things the adapter does to a variable's memory, on any device.

use smoothout::{Draw, Param, PerturbOps, StateOps};

/// What to do to the variable's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Perturb,
    Denoise,
}

impl Action {
    /// Perturbs or de-noises `w` through the core's `param` on `backend`.
    pub(crate) fn run<B: StateOps + PerturbOps>(
        self,
        param: &mut Param<B>,
        backend: &B,
        w: &mut B::Buffer,
        draw: Draw,
    ) -> smoothout::Result<()> {
        match self {
            Action::Perturb => param.perturb(backend, w, draw),
            Action::Denoise => param.denoise(backend, w, draw),
        }
    }
}
