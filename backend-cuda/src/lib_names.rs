//! Where cudarc looks for a CUDA library: the file names it tries, in order.

/// The file names cudarc's dynamic loading tries for `stem`, in its order
/// and without repeats (cudarc 0.19's `get_lib_name_candidates`, for CUDA
/// 13.0, copied because cudarc only has it when it loads CUDA at run time;
/// when another crate in the build, such as candle, makes cudarc link CUDA
/// instead, the probe still names the files).
pub(crate) fn lib_names(stem: &str) -> Vec<String> {
    use std::env::consts::{DLL_PREFIX as P, DLL_SUFFIX as S};
    let w = usize::BITS;
    let (major, minor) = (13, 0);
    let names = [
        format!("{P}{stem}{S}"),
        format!("{P}{stem}{w}{S}"),
        format!("{P}{stem}{w}_{major}{S}"),
        format!("{P}{stem}{w}_{major}{minor}{S}"),
        format!("{P}{stem}{w}_{major}{minor}_0{S}"),
        format!("{P}{stem}{w}_{major}0_{minor}{S}"),
        format!("{P}{stem}{w}_10{S}"),
        format!("{P}{stem}{w}_11{S}"),
        format!("{P}{stem}{w}_12{S}"),
        format!("{P}{stem}{w}_{major}0_0{S}"),
        format!("{P}{stem}{w}_9{S}"),
        format!("{P}{stem}{S}.{major}"),
        format!("{P}{stem}{S}.12"),
        format!("{P}{stem}{S}.11"),
        format!("{P}{stem}{S}.10"),
        format!("{P}{stem}{S}.9"),
        format!("{P}{stem}{S}.1"),
    ];
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::lib_names;

    #[test]
    fn lib_names_are_cudarcs_for_cuda_13_without_repeats() {
        let names = lib_names("cuda");
        assert_eq!(names.first().map(String::as_str), Some("libcuda.so"));
        for must in ["libcuda.so.13", "libcuda.so.1", "libcuda64_130_0.so"] {
            assert!(names.iter().any(|n| n == must), "{must} missing: {names:?}");
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "repeats in {names:?}");
    }
}
