//! Specs from names and shapes: which variables are weights, biases or
//! normalisation parameters.

use smoothout::ParamSpec;

/// The spec the adapter gives a variable named `name` of shape `dims` unless
/// told otherwise:
///
/// ```text
/// normalisation name (below)  → ParamSpec::normalization(name, len)   not perturbed
/// rank ≥ 2                    → ParamSpec::weight(name, dims)          rows = dims[0]
/// rank 1                      → ParamSpec::bias(name, dims[0])         per element
/// rank 0                      → ParamSpec::bias(name, 1)
/// ```
///
/// A name is a normalisation name when one of its `.`- or `/`-separated
/// segments, lower-cased, contains `norm` (`layer_norm`, `norm1`,
/// `rmsnorm`), is one of `running_mean`, `running_var`,
/// `num_batches_tracked`, or starts with `bn`, `ln` or `gn` followed by
/// nothing, a digit or `_` (`bn1`, `ln_f`, `gn`). candle-nn's BatchNorm keeps
/// its running statistics as variables of the same `VarMap` (`bn1.running_mean`):
/// they are never perturbed.
///
/// ```
/// use smoothout::Role;
/// use smoothout_candle::infer_spec;
/// assert_eq!(infer_spec("fc1.weight", &[512, 784]).role, Role::Weight);
/// assert_eq!(infer_spec("fc1.bias", &[512]).role, Role::Bias);
/// let bn = infer_spec("bn1.weight", &[512]);
/// assert_eq!(bn.role, Role::Normalization);
/// assert!(!bn.perturbed);
/// assert!(!infer_spec("blocks.0.ln_f.bias", &[64]).perturbed);
/// assert!(infer_spec("bnx.weight", &[8, 8]).perturbed); // `bnx` is not `bn…`
/// ```
#[must_use]
pub fn infer_spec(name: &str, dims: &[usize]) -> ParamSpec {
    let len = dims.iter().product();
    if is_normalization_name(name) {
        return ParamSpec::normalization(name, len);
    }
    match dims.len() {
        0 => ParamSpec::bias(name, 1),
        1 => ParamSpec::bias(name, len),
        _ => ParamSpec::weight(name, dims),
    }
}

/// Whether `name` names a normalisation parameter or statistic (the rule of
/// [`infer_spec`]).
#[must_use]
pub fn is_normalization_name(name: &str) -> bool {
    name.split(['.', '/']).any(|segment| {
        let s = segment.to_ascii_lowercase();
        s.contains("norm")
            || matches!(
                s.as_str(),
                "running_mean" | "running_var" | "num_batches_tracked"
            )
            || ["bn", "ln", "gn"].iter().any(|p| {
                s.strip_prefix(p).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_digit() || c == '_')
                })
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoothout::Role;

    #[test]
    fn roles_from_names_and_ranks() {
        for (name, dims, role) in [
            ("fc1.weight", &[512usize, 784][..], Role::Weight),
            ("conv.weight", &[64, 3, 5, 5][..], Role::Weight),
            ("fc1.bias", &[512][..], Role::Bias),
            ("scale", &[][..], Role::Bias),
            ("bn1.weight", &[512][..], Role::Normalization),
            ("bn1.running_var", &[512][..], Role::Normalization),
            ("encoder/LayerNorm/gamma", &[64][..], Role::Normalization),
            ("h.0.ln_1.weight", &[64][..], Role::Normalization),
            ("gn.bias", &[64][..], Role::Normalization),
            ("norm.weight", &[64][..], Role::Normalization),
            ("lnx.weight", &[64, 2][..], Role::Weight),
            ("bnb.bias", &[64][..], Role::Bias),
        ] {
            let spec = infer_spec(name, dims);
            assert_eq!(spec.role, role, "{name}");
            assert_eq!(spec.perturbed, role != Role::Normalization, "{name}");
            assert_eq!(spec.len(), dims.iter().product::<usize>(), "{name}");
        }
        assert_eq!(infer_spec("fc.weight", &[10, 4, 3]).rows(), 10);
    }
}
