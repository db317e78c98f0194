//! The CUDA C sources, their kernels, and compiling them with NVRTC.
//!
//! Each module is `common.cuh` followed by its own file, compiled to PTX for
//! the device's architecture with `--fmad=false` (no multiply-add
//! contraction: the noise arithmetic must round as the Rust reference does)
//! and loaded once per [`crate::Cuda`].

use cudarc::nvrtc::{CompileOptions, Ptx};

use crate::error::CudaError;

/// One CUDA C source file and the kernels it defines.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// The file's name under `backend-cuda/kernels/`.
    pub file: &'static str,
    /// Its source text (without the common header).
    pub source: &'static str,
    /// The `extern "C" __global__` functions it must define.
    pub kernels: &'static [&'static str],
}

/// The header every module starts with.
pub const COMMON: &str = include_str!("../kernels/common.cuh");

/// Every module of the backend.
pub const MODULES: [Module; 2] = [
    Module {
        file: "noise.cu",
        source: include_str!("../kernels/noise.cu"),
        kernels: &[
            "fill_noise",
            "perturb",
            "write_noise",
            "denoise",
            "drop_out",
            "denoise_sgd",
            "axpy",
            "row_norms",
            "filter_scales",
            "perturb_filter_norm",
        ],
    },
    Module {
        file: "tensor.cu",
        source: include_str!("../kernels/tensor.cu"),
        kernels: crate::tensor::KERNELS,
    },
];

/// The architectures the NVRTC check compiles for when no device says
/// which: Ampere (A100) and Hopper (H100, H200).
pub const CHECK_ARCHS: [&str; 2] = ["compute_80", "compute_90"];

/// Compiles `module` for `arch` (`"compute_90"`, …) and checks that the
/// PTX defines every kernel the module lists.
///
/// # Errors
/// [`CudaError::MissingLibrary`] when NVRTC cannot be loaded;
/// [`CudaError::Compile`] with NVRTC's log when the source does not
/// compile, or names the missing kernels.
pub fn compile(module: &Module, arch: &str) -> Result<Ptx, CudaError> {
    crate::error::probe(crate::error::Library::Nvrtc)?;
    let source = format!("{COMMON}\n#line 1 \"{}\"\n{}", module.file, module.source);
    let opts = CompileOptions {
        fmad: Some(false),
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some(module.file.into()),
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(source, opts).map_err(|e| {
        let log = match &e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                log.to_string_lossy().into_owned()
            }
            other => format!("{other:?}"),
        };
        CudaError::Compile {
            file: module.file,
            arch: arch.to_string(),
            log,
        }
    })?;
    let text = ptx.to_src();
    let missing: Vec<&str> = module
        .kernels
        .iter()
        .copied()
        .filter(|k| !defines_entry(&text, k))
        .collect();
    if !missing.is_empty() {
        return Err(CudaError::Compile {
            file: module.file,
            arch: arch.to_string(),
            log: format!(
                "compiled, but these kernels are not defined (extern \"C\" __global__): {}",
                missing.join(", ")
            ),
        });
    }
    Ok(ptx)
}

/// Whether PTX text defines the entry point `name`.
fn defines_entry(ptx: &str, name: &str) -> bool {
    ptx.lines().any(|l| opens_entry(l, name))
}

/// Whether a PTX line opens the entry point `name` (`.visible .entry name(`).
fn opens_entry(line: &str, name: &str) -> bool {
    let l = line.trim_start();
    (l.starts_with(".visible .entry") || l.starts_with(".entry"))
        && l.split(|c: char| c.is_whitespace() || c == '(')
            .any(|w| w == name)
}

/// The sizes in bytes of the parameters of entry point `name` in PTX text,
/// in order (`.param .u64` is 8, `.param .u32` and `.f32` are 4, an array
/// `.b8 x[16]` is 16), or `None` when the PTX does not define it.
pub(crate) fn entry_params(ptx: &str, name: &str) -> Option<Vec<usize>> {
    let mut lines = ptx.lines();
    let opening = lines.find(|l| opens_entry(l, name))?;
    let mut sizes = Vec::new();
    if opening.contains(')') {
        return Some(sizes); // `.entry name()`: no parameters
    }
    for line in lines {
        if let Some(decl) = line.trim_start().strip_prefix(".param") {
            sizes.push(param_size(decl)?);
        }
        if line.contains(')') {
            break;
        }
    }
    Some(sizes)
}

/// The size of one `.param` declaration (the text after `.param`): its
/// scalar type's size times its name's array length.
fn param_size(decl: &str) -> Option<usize> {
    let words: Vec<&str> = decl
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let scalar = words.iter().find_map(|w| {
        let bits = w
            .strip_prefix(".u")
            .or_else(|| w.strip_prefix(".s"))
            .or_else(|| w.strip_prefix(".b"))
            .or_else(|| w.strip_prefix(".f"))?;
        match bits {
            "8" => Some(1),
            "16" => Some(2),
            "32" => Some(4),
            "64" => Some(8),
            _ => None,
        }
    })?;
    let count = match words.last()?.split_once('[') {
        Some((_, n)) => n.trim_end_matches(']').parse().ok()?,
        None => 1,
    };
    Some(scalar * count)
}

/// Compiles every module for every architecture of [`CHECK_ARCHS`]: what
/// CI runs on a machine without a GPU. Returns `(file, arch, PTX bytes)`.
///
/// # Errors
/// As [`compile`], for the first module that fails.
pub fn compile_all() -> Result<Vec<(&'static str, &'static str, usize)>, CudaError> {
    let mut out = Vec::new();
    for arch in CHECK_ARCHS {
        for m in &MODULES {
            let ptx = compile(m, arch)?;
            out.push((m.file, arch, ptx.to_src().len()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_are_found_by_name() {
        let ptx =
            ".visible .entry perturb(\n.param .u64 a\n)\n.visible .entry perturb_filter_norm(";
        assert!(defines_entry(ptx, "perturb"));
        assert!(defines_entry(ptx, "perturb_filter_norm"));
        assert!(!defines_entry(ptx, "denoise"));
        assert!(!defines_entry(ptx, "perturb_filter"));
    }

    #[test]
    fn entry_parameters_are_read_with_their_sizes() {
        let ptx = ".version 8.8\n.visible .entry axpy(\n\t.param .f32 axpy_param_0,\n\t\
                   .param .u64 .ptr .global .align 4 axpy_param_1,\n\t.param .u32 axpy_param_2,\n\t\
                   .param .align 4 .b8 axpy_param_3[12]\n)\n{\n\tret;\n}\n\
                   .visible .entry empty()\n{\n}\n\
                   .visible .entry last(\n\t.param .u64 last_param_0\n)\n{\n}\n";
        assert_eq!(entry_params(ptx, "axpy"), Some(vec![4, 8, 4, 12]));
        assert_eq!(entry_params(ptx, "empty"), Some(vec![]));
        assert_eq!(entry_params(ptx, "last"), Some(vec![8]));
        assert_eq!(entry_params(ptx, "missing"), None);
    }

    #[test]
    fn every_module_lists_its_kernels() {
        for m in &MODULES {
            assert!(!m.kernels.is_empty(), "{}", m.file);
            for k in m.kernels {
                assert!(
                    m.source.contains(&format!("void {k}(")),
                    "{} does not define {k}",
                    m.file
                );
            }
        }
    }
}
