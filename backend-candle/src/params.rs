//! The named variables SmoothOut works on, with their specs.

use candle_core::Var;
use candle_nn::VarMap;
use smoothout::ParamSpec;

use crate::error::{Error, Result};
use crate::spec::infer_spec;

/// Named variables and their [`ParamSpec`]s, in name order.
///
/// The name keys a variable's noise (`smoothout::param_id(name)`), so the
/// noise of a parameter does not depend on the order in which variables are
/// listed or created. Specs start as [`infer_spec`] says and can be
/// overridden by name.
///
/// ```
/// use candle_core::{DType, Device, Var};
/// use smoothout::Role;
/// use smoothout_candle::Params;
///
/// let w = Var::zeros((4, 3), DType::F32, &Device::Cpu)?;
/// let s = Var::ones(4, DType::F32, &Device::Cpu)?;
/// let params = Params::from_named([("head.weight", w), ("head.scale", s)])?
///     .with_normalization("head.scale")?;
/// let roles: Vec<_> = params.specs().map(|s| (s.name.as_str(), s.role)).collect();
/// assert_eq!(roles, [("head.scale", Role::Normalization), ("head.weight", Role::Weight)]);
/// # Ok::<(), smoothout_candle::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Params {
    entries: Vec<(Var, ParamSpec)>,
}

impl Params {
    /// Every variable of `varmap`, named by its keys (candle-nn's BatchNorm
    /// running statistics included: their names make them normalisation
    /// entries, never perturbed).
    ///
    /// # Errors
    /// None in practice (a `VarMap`'s names are unique); the signature
    /// matches [`from_named`](Self::from_named).
    pub fn from_varmap(varmap: &VarMap) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Candle(candle_core::Error::msg("the VarMap's lock is poisoned")))?;
        let named: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        drop(data);
        Self::from_named(named)
    }

    /// Variables with the names that key their noise.
    ///
    /// # Errors
    /// [`Error::DuplicateParam`] when a name repeats.
    pub fn from_named<S: Into<String>>(named: impl IntoIterator<Item = (S, Var)>) -> Result<Self> {
        let mut entries: Vec<(Var, ParamSpec)> = named
            .into_iter()
            .map(|(name, var)| {
                let spec = infer_spec(&name.into(), var.dims());
                (var, spec)
            })
            .collect();
        entries.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        if let Some(w) = entries.windows(2).find(|w| w[0].1.name == w[1].1.name) {
            return Err(Error::DuplicateParam {
                name: w[0].1.name.clone(),
            });
        }
        Ok(Params { entries })
    }

    fn entry_mut(&mut self, name: &str) -> Result<&mut (Var, ParamSpec)> {
        match self
            .entries
            .binary_search_by(|e| e.1.name.as_str().cmp(name))
        {
            Ok(i) => Ok(&mut self.entries[i]),
            Err(_) => Err(Error::UnknownParam {
                name: name.to_owned(),
            }),
        }
    }

    /// Replaces the spec of the variable named `spec.name` (its role, its
    /// row structure for AdaSmoothOut, whether it is perturbed).
    ///
    /// # Errors
    /// [`Error::UnknownParam`] for a name not in the set, [`Error::SpecShape`]
    /// when the spec's element count differs from the variable's.
    pub fn with_spec(mut self, spec: ParamSpec) -> Result<Self> {
        let (var, old) = self.entry_mut(&spec.name)?;
        if spec.len() != var.elem_count() {
            return Err(Error::SpecShape {
                spec: spec.len(),
                name: spec.name,
                var: var.elem_count(),
            });
        }
        *old = spec;
        Ok(self)
    }

    /// Makes the variable `name` a normalisation parameter (not perturbed).
    ///
    /// # Errors
    /// [`Error::UnknownParam`].
    pub fn with_normalization(mut self, name: &str) -> Result<Self> {
        let (var, spec) = self.entry_mut(name)?;
        *spec = ParamSpec::normalization(name, var.elem_count());
        Ok(self)
    }

    /// Whether the variable `name` is perturbed, whatever its role.
    ///
    /// # Errors
    /// [`Error::UnknownParam`].
    pub fn with_perturbed(mut self, name: &str, perturbed: bool) -> Result<Self> {
        let (_, spec) = self.entry_mut(name)?;
        spec.perturbed = perturbed;
        Ok(self)
    }

    /// The specs, in name order.
    pub fn specs(&self) -> impl Iterator<Item = &ParamSpec> {
        self.entries.iter().map(|e| &e.1)
    }

    /// The variables, in name order (what the inner optimiser is built on).
    #[must_use]
    pub fn vars(&self) -> Vec<Var> {
        self.entries.iter().map(|e| e.0.clone()).collect()
    }

    /// Number of variables.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no variables.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn into_entries(self) -> Vec<(Var, ParamSpec)> {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use smoothout::Role;

    fn var(dims: &[usize]) -> Var {
        Var::zeros(dims, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn overrides_and_their_errors() -> Result<()> {
        let p = Params::from_named([("b", var(&[3])), ("a", var(&[2, 3]))])?;
        assert_eq!(
            p.specs().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let p = p
            .with_spec(ParamSpec::weight("a", [3, 2]))?
            .with_perturbed("b", false)?;
        let specs: Vec<_> = p.specs().cloned().collect();
        assert_eq!(specs[0].rows(), 3);
        assert!(!specs[1].perturbed && specs[1].role == Role::Bias);
        assert!(matches!(
            p.clone().with_normalization("c"),
            Err(Error::UnknownParam { name }) if name == "c"
        ));
        assert!(matches!(
            p.with_spec(ParamSpec::weight("a", [4, 2])),
            Err(Error::SpecShape {
                spec: 8,
                var: 6,
                ..
            })
        ));
        assert!(matches!(
            Params::from_named([("x", var(&[1])), ("x", var(&[1]))]),
            Err(Error::DuplicateParam { name }) if name == "x"
        ));
        Ok(())
    }

    #[test]
    fn varmap_names_are_sorted_and_bn_stats_excluded() -> Result<()> {
        let vm = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let _fc = candle_nn::linear(4, 3, vb.pp("fc"))?;
        let _bn = candle_nn::batch_norm(3, 1e-5, vb.pp("bn"))?;
        let p = Params::from_varmap(&vm)?;
        let got: Vec<_> = p.specs().map(|s| (s.name.as_str(), s.perturbed)).collect();
        assert_eq!(
            got,
            [
                ("bn.bias", false),
                ("bn.running_mean", false),
                ("bn.running_var", false),
                ("bn.weight", false),
                ("fc.bias", true),
                ("fc.weight", true),
            ]
        );
        Ok(())
    }
}
