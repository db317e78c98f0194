//! Building and loading an emulation driver: a `.cpp` under `tests/emu/`
//! that includes `cuda_shim.h` and a kernel file, compiled by the host's
//! C++ compiler into a shared library and loaded with `libloading`; and
//! what launching its entry points needs (their status, src/lib.rs's
//! grid-stride launch). Shared by `host_emulated_kernels.rs` and
//! `host_emulated_tensor/`.

use std::ffi::{c_char, CStr};
use std::path::Path;
use std::process::Command;

use libloading::Library;

use crate::compile::compile;

/// Declares `struct Emu`, one field per entry point of a driver (the field
/// `f` is the driver's `emu_f`, read as the field's type), with `build()`,
/// which compiles and loads the driver, and `emu_or_skip()`: the driver,
/// built and loaded once per test process (the tests run in parallel; the
/// shim's state is per thread), or `None` after printing why the test is
/// skipped.
macro_rules! emu_driver {
    (
        $(#[$doc:meta])*
        struct Emu from ($driver:literal, $kernel:literal) {
            $($field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$doc])*
        struct Emu {
            _lib: ::libloading::Library,
            $($field: $ty,)*
        }

        fn emu_or_skip() -> Option<&'static Emu> {
            static EMU: ::std::sync::OnceLock<Result<Emu, String>> = ::std::sync::OnceLock::new();
            $crate::build::or_skip(EMU.get_or_init(build))
        }

        fn build() -> Result<Emu, String> {
            let library = $crate::build::build_driver($driver, $kernel)?;
            Ok(Emu {
                $($field: $crate::build::sym(&library, concat!("emu_", stringify!($field))),)*
                _lib: library,
            })
        }
    };
}
pub(crate) use emu_driver;

/// Compiles `tests/emu/{driver}` (which includes `kernels/{kernel}`) and
/// loads it, or says why not (no Unix host, no `c++`). A compiler that runs
/// but rejects the code is a failure: this panics with its messages.
pub fn build_driver(driver: &str, kernel: &str) -> Result<Library, String> {
    if !cfg!(unix) {
        return Err("the emulation needs ucontext (a Unix host)".into());
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-emulated");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let emu_dir = here.join("tests").join("emu");
    // One file per driver and process keeps parallel test processes apart.
    let lib = dir.join(format!(
        "{}{}_{}{}",
        std::env::consts::DLL_PREFIX,
        driver.trim_end_matches(".cpp"),
        std::process::id(),
        std::env::consts::DLL_SUFFIX
    ));
    let rejected = format!("kernels/{kernel} does not compile against standin/cuda_shim.h");
    compile(
        Command::new("c++")
            .args([
                "-std=c++20",
                "-O1",
                "-ffp-contract=off",
                "-fno-fast-math",
                "-fno-strict-aliasing",
                "-fPIC",
                "-shared",
                "-I",
            ])
            .arg(here.join("standin"))
            .arg("-I")
            .arg(here.join("kernels"))
            .arg(emu_dir.join(driver))
            .arg("-o")
            .arg(&lib),
        "C++",
        &rejected,
    )?;
    // SAFETY: the library is the driver just built; loading it runs only
    // its C++ static initialisers (none with side effects).
    let library = unsafe { Library::new(&lib) }.unwrap_or_else(|e| panic!("load {lib:?}: {e}"));
    // The mapping stays valid once the file is gone.
    let _ = std::fs::remove_file(&lib);
    Ok(library)
}

/// The driver's `extern "C"` function `name`, read as `T`.
pub fn sym<T: Copy>(lib: &Library, name: &str) -> T {
    // SAFETY: every name asked for is an `extern "C"` function of the
    // driver whose signature is the type alias it is read as (checked by
    // eye against the driver and against the kernels' signatures).
    unsafe {
        *lib.get::<T>(name.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// The driver, or `None` after printing why the test is skipped.
pub fn or_skip<T>(driver: &'static Result<T, String>) -> Option<&'static T> {
    match driver {
        Ok(d) => Some(d),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// What a driver entry point returns: null, or a C string saying what
/// went wrong (a divergent warp or block).
pub type Status = *const c_char;

/// The message of a non-null status.
pub fn status_message(status: Status) -> Option<String> {
    // SAFETY: a non-null status is one of the shim's static C strings.
    (!status.is_null()).then(|| {
        unsafe { CStr::from_ptr(status) }
            .to_string_lossy()
            .into_owned()
    })
}

/// Panics with the message of a non-null status.
pub fn check(status: Status, what: &str) {
    if let Some(msg) = status_message(status) {
        panic!("{what}: {msg}");
    }
}

/// `THREADS` and `MAX_BLOCKS` of src/lib.rs.
pub const THREADS: u32 = 256;
const MAX_BLOCKS: u64 = 1 << 16;

/// src/lib.rs's `grid(work)`: blocks of [`THREADS`].
pub fn grid(work: u64) -> u32 {
    work.div_ceil(u64::from(THREADS)).clamp(1, MAX_BLOCKS) as u32
}

/// src/lib.rs's launch for `work` grid-stride items, and a small grid (3
/// blocks of 64) that goes round its loop several times: `(grid, block)`.
pub fn launches(work: u64) -> [(u32, u32); 2] {
    [(grid(work), THREADS), (3, 64)]
}
