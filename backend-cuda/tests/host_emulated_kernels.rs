//! The kernels of `kernels/noise.cu`, run on the host by emulation, give
//! the bits of `smoothout::reference`, checked without a GPU.
//!
//! `tests/emu/noise_driver.cpp` compiles `common.cuh` and `noise.cu` as C++
//! (`-ffp-contract=off -fno-fast-math`, the host's equivalent of NVRTC's
//! `--fmad=false`) against `standin/cuda_shim.h`. The shim supplies the
//! CUDA built-ins: the thread indices, the `_rn` intrinsics as plain IEEE
//! operations, `float4`, and the warp shuffles, with each warp's 32 lanes
//! run as coroutines that meet at every shuffle and exchange values exactly
//! as `__shfl_down_sync` and `__shfl_sync` do. `common.cuh` takes the path
//! NVRTC compiles (its plain-C path is `host_device_functions.rs`'s).
//!
//! Every kernel is launched as `src/lib.rs` launches it (the same argument
//! order, mode and kind codes, grid and block), and again with a small grid
//! whose grid-stride loops go round several times. θ's description and an
//! AdaSmoothOut draw reach the driver as one `#[repr(C)]` struct each
//! ([`NoiseArgs`], [`RowArgs`]), which it passes on in the kernel's order. Buffers start 16-byte
//! aligned (`so_load4`'s vector path) or not (its scalar path) and sit
//! between canaries that must stay untouched. Skips with a reason when no
//! C++ compiler (`c++`) is installed, or on a host without ucontext.

#[path = "emu/buf.rs"]
mod buf;
use buf::{same, Buf, Elem};
#[path = "emu/build.rs"]
mod build;
#[path = "support/compile.rs"]
mod compile;
use build::{check, emu_driver, grid, launches, Status, THREADS};
use smoothout::reference::{self, ParamNoise, Scale};
use smoothout::unit::bernoulli_threshold;
use smoothout::{Noise, NoiseKey, Sgd, Unit};
use smoothout_testkit::hash;

type FillNoiseFn = unsafe extern "C" fn(u32, u32, *mut f32, u64, u32, u32, i32, f32, u32) -> Status;
type PerturbFn = unsafe extern "C" fn(u32, u32, *mut f32, u64, *const NoiseArgs) -> Status;
type WriteNoiseFn =
    unsafe extern "C" fn(u32, u32, *const f32, *mut f32, u64, *const NoiseArgs) -> Status;
type DropOutFn = unsafe extern "C" fn(u32, u32, *mut f32, u64, u32, u32, u32) -> Status;
type DenoiseSgdFn = unsafe extern "C" fn(
    u32,
    u32,
    *mut f32,
    *const f32,
    *mut f32,
    u64,
    i32,
    *const NoiseArgs,
    f32,
    f32,
    f32,
) -> Status;
type AxpyFn = unsafe extern "C" fn(u32, u32, f32, *const f32, *mut f32, u64) -> Status;
type RowNormsFn = unsafe extern "C" fn(u32, u32, *const f32, u64, u64, *mut f64) -> Status;
type FilterScalesFn =
    unsafe extern "C" fn(u32, u32, *const f32, *const RowArgs, *mut f32) -> Status;
type PerturbFilterNormFn =
    unsafe extern "C" fn(u32, u32, *mut f32, *const RowArgs, *mut f32) -> Status;

/// θ's description as the noise kernels take it after their buffers and
/// length (noise_driver.cpp's `so_noise`): key, unit, and the scaling of
/// [`ScaleArgs`].
#[repr(C)]
struct NoiseArgs {
    key: [u32; 2],
    unit: i32,
    mode: i32,
    s: f32,
    scales: *const f32,
    cols: u64,
}

/// An AdaSmoothOut draw as `filter_scales` and `perturb_filter_norm` take
/// it between `w` and their per-row output (noise_driver.cpp's `so_rows`).
#[repr(C)]
struct RowArgs {
    rows: u64,
    cols: u64,
    key: [u32; 2],
    unit: i32,
    strength: f64,
}

emu_driver! {
    /// The compiled driver's entry points: `emu_<kernel>(grid, block, the
    /// kernel's own arguments…)`.
    struct Emu from ("noise_driver.cpp", "noise.cu") {
        fill_noise: FillNoiseFn,
        perturb: PerturbFn,
        denoise: PerturbFn,
        write_noise: WriteNoiseFn,
        drop_out: DropOutFn,
        denoise_sgd: DenoiseSgdFn,
        axpy: AxpyFn,
        row_norms: RowNormsFn,
        filter_scales: FilterScalesFn,
        perturb_filter_norm: PerturbFilterNormFn,
    }
}

// ---- Launches, as src/lib.rs makes them ----------------------------------

/// src/lib.rs's `warp_rows(rows)`, and one block of two warps.
fn warp_launches(rows: u64) -> [(u32, u32); 2] {
    [(grid(rows.saturating_mul(32)), THREADS), (1, 64)]
}

/// The launches of a kernel whose threads take four elements each (src/lib.rs's
/// `grid(n.div_ceil(4))`, then the small grid), with its buffers 16-byte aligned
/// and 4 bytes past (the scalar path): `(align, grid, block)`.
fn vector_launches(n: usize) -> impl Iterator<Item = (usize, u32, u32)> {
    [0, 4].into_iter().flat_map(move |align| {
        launches((n as u64).div_ceil(4))
            .into_iter()
            .map(move |(g, b)| (align, g, b))
    })
}

fn unit_code(unit: Unit) -> i32 {
    match unit {
        Unit::Uniform => 0,
        Unit::Gaussian => 1,
    }
}

/// Weights of both signs over magnitudes 2^-10 .. 2^10, with +0.0, -0.0
/// and subnormals among them.
fn weights(n: usize, salt: u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let z = hash(i as u64 ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
            let x = match i % 13 {
                4 => 0.0,
                9 => -0.0,
                _ if i % 101 == 50 => f32::from_bits(0x0000_3039),
                _ => {
                    let m = ((z >> 40) as f32 + 0.5) / 16_777_216.0;
                    m * 2f32.powi(((z >> 8) % 21) as i32 - 10)
                }
            };
            if z & 1 == 1 {
                -x
            } else {
                x
            }
        })
        .collect()
}

/// Sizes around the kernels' 4-element blocks and 32-lane warps, none too
/// big for a debug build.
const SIZES: [usize; 9] = [1, 3, 4, 5, 63, 64, 65, 1000, 4099];
const UNITS: [Unit; 2] = [Unit::Uniform, Unit::Gaussian];

/// θ's scaling in a test case.
#[derive(Clone, Copy, Debug)]
enum Scaling {
    Fixed(f32),
    PerElement(f32),
    Rows(usize),
}

/// Per-element scaling at 1.5 makes `1 ∓ s·u` negative for some elements,
/// so that de-noising -0.0 shows which sign the kernel took it to have.
const SCALINGS: [Scaling; 6] = [
    Scaling::Fixed(0.05),
    Scaling::PerElement(0.1),
    Scaling::PerElement(1.5),
    Scaling::Rows(1),
    Scaling::Rows(7),
    Scaling::Rows(75),
];

/// A draw of θ: its key and unit, and its scaling as src/lib.rs passes
/// it: mode, fixed scale, per-row scales (one dummy element when unused)
/// and row length.
struct ScaleArgs {
    key: NoiseKey,
    unit: Unit,
    scaling: Scaling,
    mode: i32,
    s: f32,
    scales: Vec<f32>,
    cols: u64,
}

impl ScaleArgs {
    /// Per-row scales are reference::filter_scales of `w`'s rows (the last
    /// one padded with zeros when `cols` does not divide `w.len()`).
    fn new(scaling: Scaling, key: NoiseKey, unit: Unit, w: &[f32]) -> Self {
        let (mode, s, scales, cols) = match scaling {
            Scaling::Fixed(s) => (0, s, vec![0.0], 1),
            Scaling::PerElement(s) => (1, s, vec![0.0], 1),
            Scaling::Rows(cols) => {
                let rows = w.len().div_ceil(cols);
                let mut padded = w.to_vec();
                padded.resize(rows * cols, 0.0);
                let mut scales = vec![0.0; rows];
                reference::filter_scales(key, unit, 0.3, cols, 0, &padded, &mut scales)
                    .expect("reference filter_scales");
                (2, 0.0, scales, cols as u64)
            }
        };
        ScaleArgs {
            key,
            unit,
            scaling,
            mode,
            s,
            scales,
            cols,
        }
    }

    /// The driver's arguments for this draw (they point into
    /// `self.scales`).
    fn args(&self) -> NoiseArgs {
        NoiseArgs {
            key: self.key.0,
            unit: unit_code(self.unit),
            mode: self.mode,
            s: self.s,
            scales: self.scales.as_ptr(),
            cols: self.cols,
        }
    }

    /// The draw as the reference takes it.
    fn noise(&self) -> ParamNoise<'_, f32, [f32]> {
        let scale = match self.scaling {
            Scaling::Fixed(s) => Scale::Fixed(s),
            Scaling::PerElement(s) => Scale::PerElement(s),
            Scaling::Rows(cols) => Scale::Rows {
                cols,
                scales: &self.scales[..],
            },
        };
        ParamNoise {
            key: self.key,
            unit: self.unit,
            scale,
        }
    }
}

/// Every θ the perturbation tests draw for `w`: each unit under the key
/// `for_draw(seed, w.len(), ghost, unit)`, with each scaling of
/// [`SCALINGS`]: `(unit, scaling, the draw)`.
fn draws(
    seed: u64,
    ghost: u64,
    w: &[f32],
) -> impl Iterator<Item = (Unit, Scaling, ScaleArgs)> + '_ {
    UNITS.into_iter().flat_map(move |unit| {
        let key = NoiseKey::for_draw(seed, w.len() as u64, ghost, unit_code(unit) as u64);
        SCALINGS
            .into_iter()
            .map(move |scaling| (unit, scaling, ScaleArgs::new(scaling, key, unit, w)))
    })
}

/// Launches and elements compared, printed at the end of each test.
#[derive(Default)]
struct Tally {
    launches: usize,
    elements: usize,
}

impl Tally {
    fn add(&mut self, elements: usize) {
        self.launches += 1;
        self.elements += elements;
    }

    fn report(&self, what: &str) {
        eprintln!(
            "{what}: {} emulated launches, {} elements equal to the reference bit for bit",
            self.launches, self.elements
        );
    }
}

/// Runs `body(emu, tally, case)` for every case of a test's table (a
/// size, a row shape) and reports the tally as `what`; returns at once,
/// having said why, when the driver cannot be built.
fn run_cases<C>(
    what: &str,
    cases: impl IntoIterator<Item = C>,
    mut body: impl FnMut(&Emu, &mut Tally, C),
) {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    for case in cases {
        body(emu, &mut tally, case);
    }
    tally.report(what);
}

// ---- Element-wise kernels ----------------------------------------------

#[test]
fn fill_noise_matches_reference() {
    let noises = [
        Noise::uniform(0.05).unwrap(),
        Noise::gaussian(0.02).unwrap(),
        Noise::bernoulli(0.0).unwrap(),
        Noise::bernoulli(0.3).unwrap(),
        Noise::bernoulli(1.0).unwrap(),
    ];
    run_cases("fill_noise", SIZES, |emu, tally, n| {
        for key in [
            NoiseKey::for_draw(7, 1234, 1, n as u64),
            NoiseKey::from_seed(u64::MAX),
        ] {
            for noise in &noises {
                let mut want = vec![0.0f32; n];
                reference::fill_noise(key, noise, 0, &mut want).expect("reference");
                // src/lib.rs's codes.
                let (kind, s, t) = match *noise {
                    Noise::Uniform { a } => (0i32, a as f32, 0u32),
                    Noise::Gaussian { std } => (1, std as f32, 0),
                    Noise::Bernoulli { p } => (2, 0.0, bernoulli_threshold(p)),
                };
                for (align, g, b) in vector_launches(n) {
                    let what =
                        format!("fill_noise n {n} {noise:?} {key:?} align {align} grid {g}x{b}");
                    let mut out = Buf::aligned(&vec![f32::POISON; n], align);
                    let [k0, k1] = key.0;
                    // SAFETY: `out` holds n floats; the arguments are
                    // fill_noise's, in its order.
                    check(
                        unsafe { (emu.fill_noise)(g, b, out.ptr(), n as u64, k0, k1, kind, s, t) },
                        &what,
                    );
                    tally.add(same(&what, out.get(&what), &want));
                }
            }
        }
    });
}

#[test]
fn perturb_and_denoise_match_reference() {
    run_cases("perturb, denoise", SIZES, |emu, tally, n| {
        let w = weights(n, n as u64);
        for (unit, scaling, a) in draws(3, 0, &w) {
            let mut perturbed = w.clone();
            reference::perturb(&a.noise(), 0, &mut perturbed);
            let mut denoised = w.clone();
            reference::denoise(&a.noise(), 0, &mut denoised);
            let kernels: [(&str, PerturbFn, &[f32]); 2] = [
                ("perturb", emu.perturb, &perturbed),
                ("denoise", emu.denoise, &denoised),
            ];
            for (name, kernel, want) in kernels {
                for (align, g, b) in vector_launches(n) {
                    let what =
                        format!("{name} n {n} {unit:?} {scaling:?} align {align} grid {g}x{b}");
                    let mut buf = Buf::aligned(&w, align);
                    // SAFETY: `buf` holds n floats and `a.scales`
                    // one per row (or the dummy when unused).
                    let status = unsafe { kernel(g, b, buf.ptr(), n as u64, &a.args()) };
                    check(status, &what);
                    tally.add(same(&what, buf.get(&what), want));
                }
            }
        }
    });
}

#[test]
fn write_noise_matches_reference() {
    run_cases("write_noise", SIZES, |emu, tally, n| {
        let w = weights(n, n as u64);
        for (unit, scaling, a) in draws(5, 1, &w) {
            let mut want = vec![f32::NAN; n];
            reference::write_noise(&a.noise(), 0, &w, &mut want).expect("reference");
            for (align, g, b) in vector_launches(n) {
                let what =
                    format!("write_noise n {n} {unit:?} {scaling:?} align {align} grid {g}x{b}");
                let mut wb = Buf::aligned(&w, align);
                let mut out = Buf::aligned(&vec![f32::POISON; n], align);
                // SAFETY: `wb` and `out` hold n floats each and
                // `a.scales` one per row (or the dummy when unused).
                let status =
                    unsafe { (emu.write_noise)(g, b, wb.ptr(), out.ptr(), n as u64, &a.args()) };
                check(status, &what);
                tally.add(same(&what, out.get(&what), &want));
                tally.add(same(&format!("{what}: w untouched"), wb.get(&what), &w));
            }
        }
    });
}

#[test]
fn drop_out_matches_reference() {
    run_cases("drop_out", SIZES, |emu, tally, n| {
        let w = weights(n, 99 + n as u64);
        let key = NoiseKey::for_draw(11, 5, 2, n as u64);
        let [k0, k1] = key.0;
        for p in [0.0, 0.3, 0.5, 1.0] {
            let mut want = w.clone();
            reference::drop_out(key, p, 0, &mut want).expect("reference");
            for (align, g, b) in vector_launches(n) {
                let what = format!("drop_out n {n} p {p} align {align} grid {g}x{b}");
                let mut buf = Buf::aligned(&w, align);
                let t = bernoulli_threshold(p);
                // SAFETY: `buf` holds n floats.
                check(
                    unsafe { (emu.drop_out)(g, b, buf.ptr(), n as u64, k0, k1, t) },
                    &what,
                );
                tally.add(same(&what, buf.get(&what), &want));
            }
        }
    });
}

#[test]
fn denoise_sgd_matches_reference() {
    let sgds = [
        Sgd::new(0.1, 0.9, 5e-4).unwrap(),
        Sgd::new(0.05, 0.0, 0.0).unwrap(),
    ];
    // (w, grad, velocity) byte offsets past a 16-byte boundary: all on the
    // vector path, and each on the scalar path differently.
    let aligns = [[0, 0, 0], [4, 8, 12], [0, 8, 0]];
    let mut draws: Vec<Option<(Unit, Scaling)>> = vec![None];
    for unit in UNITS {
        draws.extend(SCALINGS.iter().map(|&s| Some((unit, s))));
    }
    run_cases("denoise_sgd", SIZES, |emu, tally, n| {
        let w = weights(n, 7 * n as u64);
        let grad = weights(n, 7 * n as u64 + 1);
        let vel: Vec<f32> = weights(n, 7 * n as u64 + 2)
            .iter()
            .map(|v| v * 0.01)
            .collect();
        for &draw in &draws {
            let key = NoiseKey::for_draw(5, 40, 0, n as u64);
            let args = draw.map(|(u, s)| ScaleArgs::new(s, key, u, &w));
            let noise = args.as_ref().map(ScaleArgs::noise);
            // src/lib.rs's arguments without noise.
            let dummy = [0.0f32];
            let (has, noise_args) = match &args {
                Some(a) => (1, a.args()),
                None => (
                    0,
                    NoiseArgs {
                        key: [0, 0],
                        unit: 0,
                        mode: 0,
                        s: 0.0,
                        scales: dummy.as_ptr(),
                        cols: 1,
                    },
                ),
            };
            for sgd in &sgds {
                let (mut want_w, mut want_v) = (w.clone(), vel.clone());
                reference::denoise_sgd(noise.as_ref(), 0, &mut want_w, &grad, &mut want_v, sgd)
                    .expect("reference");
                let (lr, mu, wd) = (sgd.lr as f32, sgd.momentum as f32, sgd.weight_decay as f32);
                for [aw, ag, av] in aligns {
                    for (g, b) in launches((n as u64).div_ceil(4)) {
                        let what = format!(
                            "denoise_sgd n {n} {draw:?} {sgd:?} align {aw}/{ag}/{av} grid {g}x{b}"
                        );
                        let (mut wb, gb, mut vb) = (
                            Buf::aligned(&w, aw),
                            Buf::aligned(&grad, ag),
                            Buf::aligned(&vel, av),
                        );
                        // SAFETY: w, grad and velocity hold n floats each,
                        // `scales` one per row (or the dummy).
                        let status = unsafe {
                            (emu.denoise_sgd)(
                                g,
                                b,
                                wb.ptr(),
                                gb.cptr(),
                                vb.ptr(),
                                n as u64,
                                has,
                                &noise_args,
                                lr,
                                mu,
                                wd,
                            )
                        };
                        check(status, &what);
                        same(&format!("{what} (grad)"), gb.get(&what), &grad);
                        let c = same(&format!("{what} (w)"), wb.get(&what), &want_w)
                            + same(&format!("{what} (velocity)"), vb.get(&what), &want_v);
                        tally.add(c);
                    }
                }
            }
        }
    });
}

#[test]
fn axpy_matches_reference() {
    run_cases("axpy", SIZES, |emu, tally, n| {
        let x = weights(n, 1000 + n as u64);
        let y = weights(n, 2000 + n as u64);
        for alpha in [0.5f32, -1.25, 0.0] {
            let mut want = y.clone();
            reference::axpy(alpha, &x, &mut want).expect("reference");
            for (ax, ay) in [(0, 0), (4, 8)] {
                for (g, b) in launches(n as u64) {
                    let what = format!("axpy n {n} alpha {alpha} align {ax}/{ay} grid {g}x{b}");
                    let (xb, mut yb) = (Buf::aligned(&x, ax), Buf::aligned(&y, ay));
                    // SAFETY: x and y hold n floats each.
                    check(
                        unsafe { (emu.axpy)(g, b, alpha, xb.cptr(), yb.ptr(), n as u64) },
                        &what,
                    );
                    same(&format!("{what} (x)"), xb.get(&what), &x);
                    tally.add(same(&what, yb.get(&what), &want));
                }
            }
        }
    });
}

// ---- Warp-per-row kernels ----------------------------------------------

/// (cols, rows): rows shorter than, equal to and longer than a warp, one
/// row and many, more rows than the small launch has warps.
const SHAPES: [(usize, usize); 12] = [
    (1, 1),
    (1, 3),
    (1, 65),
    (1, 300),
    (7, 1),
    (7, 5),
    (7, 65),
    (32, 3),
    (33, 3),
    (75, 1),
    (75, 9),
    (75, 65),
];

/// Row weights, row 1 (when there is one) all zeros.
fn row_weights(cols: usize, rows: usize) -> Vec<f32> {
    let mut w = weights(cols * rows, (cols * 1000 + rows) as u64);
    if rows > 1 {
        w[cols..2 * cols].fill(0.0);
    }
    w
}

#[test]
fn row_norms_match_reference() {
    run_cases("row_norms", SHAPES, |emu, tally, (cols, rows)| {
        let w = row_weights(cols, rows);
        let mut want = vec![0.0f64; rows];
        reference::row_norms(&w, cols, &mut want).expect("reference");
        for (g, b) in warp_launches(rows as u64) {
            let what = format!("row_norms {rows} x {cols} grid {g}x{b}");
            let wb = Buf::aligned(&w, 0);
            let canary = f64::CANARY;
            let mut out = vec![canary; rows + 2];
            // SAFETY: w holds rows·cols floats, `out` at least rows doubles.
            check(
                unsafe {
                    (emu.row_norms)(g, b, wb.cptr(), rows as u64, cols as u64, out.as_mut_ptr())
                },
                &what,
            );
            same(&format!("{what} (w)"), wb.get(&what), &w);
            assert!(
                out[rows..].iter().all(|x| x.to_bits() == canary.to_bits()),
                "{what}: wrote past the rows"
            );
            for (r, (got, want)) in out.iter().zip(&want).enumerate() {
                assert!(
                    got.to_bits() == want.to_bits(),
                    "{what}: row {r}: emulated kernel {got:e}, reference {want:e}"
                );
            }
            tally.add(rows);
        }
    });
}

#[test]
fn filter_scales_and_perturb_filter_norm_match_reference() {
    let strength = 0.3;
    run_cases(
        "filter_scales, perturb_filter_norm",
        SHAPES,
        |emu, tally, (cols, rows)| {
            let w = row_weights(cols, rows);
            for unit in UNITS {
                let key =
                    NoiseKey::for_draw(9, cols as u64, 1, rows as u64 + 8 * unit_code(unit) as u64);
                let row_args = RowArgs {
                    rows: rows as u64,
                    cols: cols as u64,
                    key: key.0,
                    unit: unit_code(unit),
                    strength,
                };
                let mut want_s = vec![0.0f32; rows];
                reference::filter_scales(key, unit, strength, cols, 0, &w, &mut want_s)
                    .expect("reference");
                let (mut want_pw, mut want_ps) = (w.clone(), vec![0.0f32; rows]);
                reference::perturb_filter_norm(
                    key,
                    unit,
                    strength,
                    cols,
                    0,
                    &mut want_pw,
                    &mut want_ps,
                )
                .expect("reference");
                for (g, b) in warp_launches(rows as u64) {
                    let what = format!("filter_scales {rows} x {cols} {unit:?} grid {g}x{b}");
                    let wb = Buf::aligned(&w, 0);
                    let mut sb = Buf::aligned(&vec![f32::POISON; rows], 0);
                    // SAFETY: w holds rows·cols floats, the scales rows.
                    check(
                        unsafe { (emu.filter_scales)(g, b, wb.cptr(), &row_args, sb.ptr()) },
                        &what,
                    );
                    same(&format!("{what} (w)"), wb.get(&what), &w);
                    tally.add(same(&what, sb.get(&what), &want_s));

                    let what = format!("perturb_filter_norm {rows} x {cols} {unit:?} grid {g}x{b}");
                    let mut wb = Buf::aligned(&w, 0);
                    let mut sb = Buf::aligned(&vec![f32::POISON; rows], 0);
                    // SAFETY: as above.
                    check(
                        unsafe { (emu.perturb_filter_norm)(g, b, wb.ptr(), &row_args, sb.ptr()) },
                        &what,
                    );
                    let c = same(&format!("{what} (scales)"), sb.get(&what), &want_ps)
                        + same(&format!("{what} (w)"), wb.get(&what), &want_pw);
                    tally.add(c);
                }
            }
        },
    );
}
