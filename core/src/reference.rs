//! The plain-slice reference: ground truth for every backend.
//!
//! Needs neither `std` nor `alloc`. Every function addresses noise by the
//! element's index within its parameter (`start` is the index of the first
//! element of the slice), so a backend that splits a buffer into chunks, in
//! any way and on any number of threads, gets the same bits by calling these
//! on each chunk.
//!
//! Arithmetic, in the parameter type `T`, one rounding per step (no fused
//! multiply-add, so that a GPU kernel reproduces it with `__fmul_rn` and
//! `__fadd_rn`):
//!
//! ```text
//! Fixed(s), Rows(s_i):  θ = s · u         perturb  w ← w + θ      de-noise  w ← w − θ
//! PerElement(s):        θ = (s · |w|) · u perturb  w ← w + θ      de-noise  w ← w / (1 + (s · u) · sgn w)
//! FilterNorm scales:    s_i = strength · ‖w_i‖ / (‖u_i‖ + 1e-6)   in f64, rounded to T once
//! ```
//!
//! Sums of squares run over 32 interleaved `f64` lanes (element `k` of a
//! row goes to lane `k mod 32`), combined at the end in the order of a warp's
//! `shfl_down` tree (lane `l` adds lane `l + h`, h = 16, 8, 4, 2, 1): deterministic, and
//! vectorisable.

use crate::error::{check_len, Error, Result};
use crate::noise::philox::{Blocks, NoiseKey, Portable, TILE, TILE_BLOCKS};
use crate::noise::unit::{bernoulli_threshold, tiles, unit_tile, Unit};
use crate::noise::Noise;
use crate::real::Real;
use crate::step::Sgd;

/// How the unit draw is scaled into θ for one parameter.
#[derive(Debug)]
pub enum Scale<'a, T, S: ?Sized> {
    /// `θ = s · u` everywhere.
    Fixed(T),
    /// `θ = s · |w| · u` (needs `s · |u| < 1` to be undone by regeneration).
    PerElement(T),
    /// `θ = scales[row] · u`, rows of `cols` elements.
    Rows {
        /// Elements per row.
        cols: usize,
        /// One scale per row (see [`filter_scales`]).
        scales: &'a S,
    },
}

impl<T: Copy, S: ?Sized> Clone for Scale<'_, T, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Copy, S: ?Sized> Copy for Scale<'_, T, S> {}

/// Everything needed to regenerate one parameter's θ: key, unit draw, scale.
/// `S` is the backend's buffer type holding per-row scales.
#[derive(Debug)]
pub struct ParamNoise<'a, T, S: ?Sized> {
    /// The parameter's key for this draw ([`NoiseKey::for_draw`]).
    pub key: NoiseKey,
    /// Uniform or Gaussian.
    pub unit: Unit,
    /// How `u` becomes θ.
    pub scale: Scale<'a, T, S>,
}

impl<T: Copy, S: ?Sized> Clone for ParamNoise<'_, T, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Copy, S: ?Sized> Copy for ParamNoise<'_, T, S> {}

/// Writes the unit draws of elements `start ..` of `key`'s stream into `out`.
#[inline(always)]
pub fn fill_unit_with<G: Blocks, T: Real>(
    gen: G,
    key: NoiseKey,
    unit: Unit,
    start: u64,
    out: &mut [T],
) {
    for_tiles(gen, key, unit, start, out, |_, o, u| {
        for (o, &u) in o.iter_mut().zip(u) {
            *o = T::from_f32(u);
        }
    });
}

/// Writes θ under fixed scaling: `a · u` (uniform), `std · z` (Gaussian),
/// or, for Bernoulli, the drop indicator (1 where the weight is dropped,
/// 0 elsewhere).
#[inline(always)]
pub fn fill_noise_with<G: Blocks, T: Real>(
    gen: G,
    key: NoiseKey,
    noise: &Noise,
    start: u64,
    out: &mut [T],
) -> Result<()> {
    noise.validate()?;
    match *noise {
        Noise::Bernoulli { p } => for_each_drop(gen, key, p, start, out, |x, dropped| {
            *x = if dropped { T::one() } else { T::zero() };
        }),
        Noise::Uniform { a: s } | Noise::Gaussian { std: s } => {
            let unit = if let Noise::Uniform { .. } = noise {
                Unit::Uniform
            } else {
                Unit::Gaussian
            };
            let s = T::from_f64(s);
            fill_unit_with(gen, key, unit, start, out);
            for x in out.iter_mut() {
                *x = s * *x;
            }
        }
    }
    Ok(())
}

#[inline(always)]
fn add_scaled<T: Real>(w: &mut [T], u: &[f32], s: T) {
    for (x, &u) in w.iter_mut().zip(u) {
        *x = *x + s * T::from_f32(u);
    }
}

#[inline(always)]
fn sub_scaled<T: Real>(w: &mut [T], u: &[f32], s: T) {
    for (x, &u) in w.iter_mut().zip(u) {
        *x = *x - s * T::from_f32(u);
    }
}

/// Runs `f(index, segment, u)` over `w` (elements `start ..` of `key`'s
/// stream) cut at tile boundaries, `u` holding the unit draws of the
/// segment's elements and `index` being its first element's index. Whole
/// tiles go through a loop of fixed-length chunks, which the compiler
/// unrolls and keeps in vector registers.
#[inline(always)]
fn for_tiles<G: Blocks, T>(
    gen: G,
    key: NoiseKey,
    unit: Unit,
    start: u64,
    w: &mut [T],
    mut f: impl FnMut(u64, &mut [T], &[f32]),
) {
    let t = TILE as u64;
    let mut tile = [0f32; TILE];
    let off = (start % t) as usize;
    let head = if off == 0 {
        0
    } else {
        (TILE - off).min(w.len())
    };
    let (h, body) = w.split_at_mut(head);
    if !h.is_empty() {
        unit_tile(gen, key, unit, start / t, &mut tile);
        f(start, h, &tile[off..off + head]);
    }
    let first = start + head as u64;
    let (whole, rest) = body.as_chunks_mut::<TILE>();
    for (i, c) in whole.iter_mut().enumerate() {
        let index = first + (i * TILE) as u64;
        unit_tile(gen, key, unit, index / t, &mut tile);
        f(index, c, &tile);
    }
    if !rest.is_empty() {
        let index = first + (whole.len() * TILE) as u64;
        unit_tile(gen, key, unit, index / t, &mut tile);
        f(index, rest, &tile[..rest.len()]);
    }
}

/// Runs `f(w_segment, u_segment, scale)` over `w` (elements `start ..`),
/// with the unit draws of the matching elements and each segment's scale;
/// segments never cross a row boundary.
#[inline(always)]
fn for_segments<G: Blocks, T: Real>(
    gen: G,
    draw: &ParamNoise<'_, T, [T]>,
    start: u64,
    w: &mut [T],
    mut f: impl FnMut(&mut [T], &[f32], T),
) {
    match draw.scale {
        Scale::Fixed(s) | Scale::PerElement(s) => {
            for_tiles(gen, draw.key, draw.unit, start, w, |_, seg, u| f(seg, u, s));
        }
        Scale::Rows { cols, scales } => {
            for_tiles(gen, draw.key, draw.unit, start, w, |base, seg, u| {
                let mut pos = 0;
                while pos < seg.len() {
                    let g = base + pos as u64;
                    let row = (g / cols as u64) as usize;
                    let end = ((row as u64 + 1) * cols as u64 - base) as usize;
                    let end = end.min(seg.len());
                    f(&mut seg[pos..end], &u[pos..end], scales[row]);
                    pos = end;
                }
            });
        }
    }
}

/// `w ← w + θ`.
#[inline(always)]
pub fn perturb_with<G: Blocks, T: Real>(
    gen: G,
    draw: &ParamNoise<'_, T, [T]>,
    start: u64,
    w: &mut [T],
) {
    if let Scale::PerElement(_) = draw.scale {
        for_segments(gen, draw, start, w, |w, u, s| {
            for (x, &u) in w.iter_mut().zip(u) {
                *x = *x + s * x.abs() * T::from_f32(u);
            }
        });
    } else {
        for_segments(gen, draw, start, w, add_scaled);
    }
}

/// `w ← w − θ`, regenerating θ (for `PerElement`, inverting the
/// multiplicative perturbation).
#[inline(always)]
pub fn denoise_with<G: Blocks, T: Real>(
    gen: G,
    draw: &ParamNoise<'_, T, [T]>,
    start: u64,
    w: &mut [T],
) {
    if let Scale::PerElement(_) = draw.scale {
        for_segments(gen, draw, start, w, |w, u, s| {
            for (x, &u) in w.iter_mut().zip(u) {
                let su = s * T::from_f32(u);
                let f = if x.is_sign_negative() {
                    T::one() - su
                } else {
                    T::one() + su
                };
                *x = *x / f;
            }
        });
    } else {
        for_segments(gen, draw, start, w, sub_scaled);
    }
}

/// `out ← θ`: the noise [`perturb`] adds to `w` (elements `start ..`), so
/// that `w + out` is bit-identical to the perturbed `w`. `w` is read for
/// per-element scaling only; `out` takes `w`'s length.
///
/// # Errors
/// [`Error::LengthMismatch`] when `out` and `w` differ in length.
#[inline(always)]
pub fn write_noise_with<G: Blocks, T: Real>(
    gen: G,
    draw: &ParamNoise<'_, T, [T]>,
    start: u64,
    w: &[T],
    out: &mut [T],
) -> Result<()> {
    check_len(
        "noise output (one element per parameter element)",
        w.len(),
        out.len(),
    )?;
    if let Scale::PerElement(_) = draw.scale {
        out.copy_from_slice(w);
        for_segments(gen, draw, start, out, |o, u, s| {
            for (x, &u) in o.iter_mut().zip(u) {
                *x = s * x.abs() * T::from_f32(u);
            }
        });
    } else {
        for_segments(gen, draw, start, out, |o, u, s| {
            for (x, &u) in o.iter_mut().zip(u) {
                *x = s * T::from_f32(u);
            }
        });
    }
    Ok(())
}

/// Bernoulli perturbation: `w_i ← 0` where element `i` is dropped
/// (probability `p`). Not invertible: keep a copy to undo it.
#[inline(always)]
pub fn drop_out_with<G: Blocks, T: Real>(
    gen: G,
    key: NoiseKey,
    p: f64,
    start: u64,
    w: &mut [T],
) -> Result<()> {
    Noise::bernoulli(p)?;
    for_each_drop(gen, key, p, start, w, |x, dropped| {
        if dropped {
            *x = T::zero();
        }
    });
    Ok(())
}

/// Runs `f(x, dropped)` for each element of `xs` (elements `start ..` of
/// `key`'s stream), `dropped` being its Bernoulli(p) draw.
#[inline(always)]
fn for_each_drop<G: Blocks, T>(
    gen: G,
    key: NoiseKey,
    p: f64,
    start: u64,
    xs: &mut [T],
    mut f: impl FnMut(&mut T, bool),
) {
    let t = bernoulli_threshold(p);
    let mut words = [0u32; TILE];
    for (tile, tr, sr) in tiles(start, xs.len()) {
        gen.blocks(key, tile * TILE_BLOCKS as u64, &mut words);
        for (x, &b) in xs[sr].iter_mut().zip(&words[tr]) {
            f(x, (b >> 8) < t);
        }
    }
}

/// Lanes of [`SumSquares`]: a CUDA warp.
pub const LANES: usize = 32;

/// Deterministic accumulator of squares over [`LANES`] `f64` lanes (see the
/// module docs).
#[derive(Clone, Debug)]
pub struct SumSquares {
    acc: [f64; LANES],
    n: usize,
}

impl Default for SumSquares {
    fn default() -> Self {
        SumSquares {
            acc: [0.0; LANES],
            n: 0,
        }
    }
}

impl SumSquares {
    #[inline(always)]
    fn one(&mut self, x: f64) {
        self.acc[self.n % LANES] += x * x;
        self.n += 1;
    }

    /// Adds the squares of `xs`, continuing the lane pattern.
    #[inline(always)]
    pub fn push<T: Real>(&mut self, xs: &[T]) {
        let lead = ((LANES - self.n % LANES) % LANES).min(xs.len());
        let (head, body) = xs.split_at(lead);
        for &x in head {
            self.one(x.to_f64());
        }
        let mut chunks = body.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, x) in self.acc.iter_mut().zip(c) {
                let x = Real::to_f64(*x);
                *a += x * x;
            }
        }
        self.n += body.len() - chunks.remainder().len();
        for &x in chunks.remainder() {
            self.one(x.to_f64());
        }
    }

    /// The total: lane `l` adds lane `l + h` for `h` = 16, 8, 4, 2, 1, and
    /// lane 0 holds the sum (the order of a warp's `shfl_down` reduction).
    #[must_use]
    pub fn total(&self) -> f64 {
        // Each step has a fixed width, so the compiler turns the first
        // ones into whole-vector adds instead of 31 dependent scalar adds.
        #[inline(always)]
        fn fold<const H: usize>(a: &mut [f64; LANES]) {
            for l in 0..H {
                a[l] += a[l + H];
            }
        }
        let mut a = self.acc;
        fold::<16>(&mut a);
        fold::<8>(&mut a);
        fold::<4>(&mut a);
        fold::<2>(&mut a);
        fold::<1>(&mut a);
        a[0]
    }
}

/// `‖x‖₂` in `f64`, with the deterministic lane order.
#[must_use]
#[inline(always)]
pub fn norm<T: Real>(x: &[T]) -> f64 {
    let mut s = SumSquares::default();
    s.push(x);
    libm::sqrt(s.total())
}

/// The L2 norm of each row of `w` (rows of `cols` elements; `w.len()` must be
/// a multiple of `cols`).
#[inline(always)]
pub fn row_norms<T: Real>(w: &[T], cols: usize, out: &mut [f64]) -> Result<()> {
    check_rows(w.len(), cols, out.len())?;
    for (row, o) in w.chunks_exact(cols).zip(out.iter_mut()) {
        *o = norm(row);
    }
    Ok(())
}

/// Checks that `len` elements form `rows` rows of `cols` (the shape check of
/// every per-row operation, for backends that implement them themselves).
///
/// # Errors
/// [`Error::LengthMismatch`] when `cols` is 0, does not divide `len`, or
/// `rows` is not `len / cols`.
pub fn check_rows(len: usize, cols: usize, rows: usize) -> Result<()> {
    if cols == 0 || !len.is_multiple_of(cols) {
        return Err(Error::LengthMismatch {
            what: "elements (a multiple of the row length)",
            expected: len.div_ceil(cols.max(1)) * cols.max(1),
            actual: len,
        });
    }
    crate::error::check_len("rows", len / cols, rows)
}

/// Checks that `draw`'s per-row scales cover a parameter of `len`
/// elements (the functions here index them unchecked); fixed and
/// per-element scaling need nothing.
///
/// # Errors
/// [`Error::LengthMismatch`] as [`check_rows`].
pub fn check_noise<T>(draw: &ParamNoise<'_, T, [T]>, len: usize) -> Result<()> {
    match draw.scale {
        Scale::Rows { cols, scales } => check_rows(len, cols, scales.len()),
        Scale::Fixed(_) | Scale::PerElement(_) => Ok(()),
    }
}

/// `‖u_row‖₂` of the unit draws of elements `start .. start + len`.
#[must_use]
#[inline(always)]
pub fn unit_norm(key: NoiseKey, unit: Unit, start: u64, len: usize) -> f64 {
    let mut tile = [0f32; TILE];
    let mut s = SumSquares::default();
    for (t, tr, _) in tiles(start, len) {
        unit_tile(Portable, key, unit, t, &mut tile);
        s.push(&tile[tr]);
    }
    libm::sqrt(s.total())
}

/// The authors' guard against a zero noise norm in Eq. 12.
pub const FILTER_EPS: f64 = 1e-6;

/// One row's AdaSmoothOut scale from the norms of its weights and its unit
/// draws, computed in `f64` and rounded to `T` once.
#[inline(always)]
fn filter_scale<T: Real>(strength: f64, w_norm: f64, u_norm: f64) -> T {
    T::from_f64(strength * w_norm / (u_norm + FILTER_EPS))
}

/// AdaSmoothOut's per-row scales, `strength · ‖w_i‖ / (‖u_i‖ + 1e-6)`, for
/// the rows `first_row ..` held in `w` (rows of `cols` elements).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn filter_scales_with<G: Blocks, T: Real>(
    gen: G,
    key: NoiseKey,
    unit: Unit,
    strength: f64,
    cols: usize,
    first_row: usize,
    w: &[T],
    out: &mut [T],
) -> Result<()> {
    check_rows(w.len(), cols, out.len())?;
    // One pass of tiles over all the rows (short rows share tiles); each
    // row's sum of squares continues its own lane pattern, so the result is
    // the same as `unit_norm` row by row.
    let mut tile = [0f32; TILE];
    let mut row = 0;
    let mut acc = SumSquares::default();
    let start = (first_row * cols) as u64;
    for (t, tr, sr) in tiles(start, w.len()) {
        unit_tile(gen, key, unit, t, &mut tile);
        let mut u = &tile[tr];
        let mut pos = sr.start;
        while !u.is_empty() {
            let take = ((row + 1) * cols - pos).min(u.len());
            acc.push(&u[..take]);
            u = &u[take..];
            pos += take;
            if pos == (row + 1) * cols {
                let un = libm::sqrt(acc.total());
                let wn = norm(&w[row * cols..pos]);
                out[row] = filter_scale(strength, wn, un);
                acc = SumSquares::default();
                row += 1;
            }
        }
    }
    Ok(())
}

/// Rows of at most this many elements are perturbed by
/// [`perturb_filter_norm`] in one pass, their noise held in a stack buffer
/// (32 KiB in `f32`); longer rows take two passes of the generator.
pub const ROW_BUFFER: usize = 8192;

/// AdaSmoothOut's perturbation in one pass: for each row `i` of `w` (rows
/// `first_row ..` of `cols` elements), `scales[i] ← strength · ‖w_i‖ /
/// (‖u_i‖ + 1e-6)` and `w_i ← w_i + scales[i] · u_i`. The same bits as
/// [`filter_scales`] followed by [`perturb`] with [`Scale::Rows`], with the
/// noise generated once instead of twice (for rows up to [`ROW_BUFFER`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn perturb_filter_norm_with<G: Blocks, T: Real>(
    gen: G,
    key: NoiseKey,
    unit: Unit,
    strength: f64,
    cols: usize,
    first_row: usize,
    w: &mut [T],
    scales: &mut [T],
) -> Result<()> {
    check_rows(w.len(), cols, scales.len())?;
    if cols > ROW_BUFFER {
        filter_scales_with(gen, key, unit, strength, cols, first_row, w, scales)?;
        for (r, (row, &s)) in w.chunks_exact_mut(cols).zip(scales.iter()).enumerate() {
            let n = ParamNoise {
                key,
                unit,
                scale: Scale::<T, [T]>::Fixed(s),
            };
            perturb_with(gen, &n, ((first_row + r) * cols) as u64, row);
        }
        return Ok(());
    }
    let mut buf = [0f32; ROW_BUFFER];
    let rows_per_batch = ROW_BUFFER / cols;
    for (b, (wb, sb)) in w
        .chunks_mut(rows_per_batch * cols)
        .zip(scales.chunks_mut(rows_per_batch))
        .enumerate()
    {
        let start = ((first_row + b * rows_per_batch) * cols) as u64;
        let u = &mut buf[..wb.len()];
        fill_unit_with(gen, key, unit, start, u);
        // Every row's scale first, then every row's update: a row's
        // reduction, square root and division then overlap the next row's
        // sums instead of stalling its update.
        for ((row, u), s) in wb
            .chunks_exact(cols)
            .zip(u.chunks_exact(cols))
            .zip(&mut *sb)
        {
            *s = filter_scale(strength, norm(row), norm(u));
        }
        for ((row, u), &s) in wb
            .chunks_exact_mut(cols)
            .zip(u.chunks_exact(cols))
            .zip(&*sb)
        {
            add_scaled(row, u, s);
        }
    }
    Ok(())
}

/// `y ← y + alpha · x`.
pub fn axpy<T: Real>(alpha: T, x: &[T], y: &mut [T]) -> Result<()> {
    check_len("axpy operands", y.len(), x.len())?;
    for (y, &x) in y.iter_mut().zip(x) {
        *y = *y + alpha * x;
    }
    Ok(())
}

#[inline(always)]
fn sgd_apply<T: Real>(w: &mut T, g: T, v: &mut T, lr: T, mu: T, wd: T) {
    let g = g + wd * *w;
    *v = mu * *v + g;
    *w = *w - lr * *v;
}

/// De-noise fused with the SGD-momentum update ([`Sgd`]): one pass reading
/// `w`, `grad`, `velocity` and writing `w`, `velocity`. With `draw = None`
/// it is the plain update.
#[inline(always)]
pub fn denoise_sgd_with<G: Blocks, T: Real>(
    gen: G,
    draw: Option<&ParamNoise<'_, T, [T]>>,
    start: u64,
    w: &mut [T],
    grad: &[T],
    velocity: &mut [T],
    sgd: &Sgd,
) -> Result<()> {
    sgd.validate()?;
    for (what, n) in [("gradient", grad.len()), ("velocity", velocity.len())] {
        check_len(what, w.len(), n)?;
    }
    let (lr, mu, wd) = (
        T::from_f64(sgd.lr),
        T::from_f64(sgd.momentum),
        T::from_f64(sgd.weight_decay),
    );
    match draw {
        Some(d) if !matches!(d.scale, Scale::PerElement(_)) => {
            let mut off = 0;
            for_segments(gen, d, start, w, |w, u, s| {
                let n = w.len();
                let (g, v) = (&grad[off..off + n], &mut velocity[off..off + n]);
                for (((x, &u), &g), v) in w.iter_mut().zip(u).zip(g).zip(v) {
                    *x = *x - s * T::from_f32(u);
                    sgd_apply(x, g, v, lr, mu, wd);
                }
                off += n;
            });
        }
        _ => {
            if let Some(d) = draw {
                denoise_with(gen, d, start, w);
            }
            for ((x, &g), v) in w.iter_mut().zip(grad).zip(velocity.iter_mut()) {
                sgd_apply(x, g, v, lr, mu, wd);
            }
        }
    }
    Ok(())
}

impl<'a, T: Copy, S: ?Sized> ParamNoise<'a, T, S> {
    /// The same noise with the row scales seen through `view` (e.g. a
    /// backend buffer as a host slice).
    pub fn map_scales<R: ?Sized>(
        &self,
        view: impl FnOnce(&'a S) -> Result<&'a R>,
    ) -> Result<ParamNoise<'a, T, R>> {
        let scale = match self.scale {
            Scale::Fixed(s) => Scale::Fixed(s),
            Scale::PerElement(s) => Scale::PerElement(s),
            Scale::Rows { cols, scales } => Scale::Rows {
                cols,
                scales: view(scales)?,
            },
        };
        Ok(ParamNoise {
            key: self.key,
            unit: self.unit,
            scale,
        })
    }
}

/// The source and destination ranges of a [`copy_range`] between buffers
/// of `src_len` and `dst_len` elements, checked (for backends whose buffers
/// are not slices).
///
/// # Errors
/// [`Error::LengthMismatch`] when either range runs past its buffer.
pub fn copy_ranges(
    src_len: usize,
    src_start: usize,
    dst_len: usize,
    dst_start: usize,
    len: usize,
) -> Result<(core::ops::Range<usize>, core::ops::Range<usize>)> {
    let src = range_within("copy_range source (start + len)", src_len, src_start, len)?;
    let dst = range_within(
        "copy_range destination (start + len)",
        dst_len,
        dst_start,
        len,
    )?;
    Ok((src, dst))
}

/// `start..start + len` when it lies within `0..buf_len`, otherwise
/// [`Error::LengthMismatch`] naming `what`.
fn range_within(
    what: &'static str,
    buf_len: usize,
    start: usize,
    len: usize,
) -> Result<core::ops::Range<usize>> {
    let end = start
        .checked_add(len)
        .filter(|&e| e <= buf_len)
        .ok_or(Error::LengthMismatch {
            what,
            expected: buf_len,
            actual: start.saturating_add(len),
        })?;
    Ok(start..end)
}

/// `dst[dst_start ..][.. len] ← src[src_start ..][.. len]`.
///
/// # Errors
/// [`Error::LengthMismatch`] when either range runs past its slice.
pub fn copy_range<T: Copy>(
    src: &[T],
    src_start: usize,
    dst: &mut [T],
    dst_start: usize,
    len: usize,
) -> Result<()> {
    let (s, d) = copy_ranges(src.len(), src_start, dst.len(), dst_start, len)?;
    dst[d].copy_from_slice(&src[s]);
    Ok(())
}

// The kernels on the portable Philox tiles ([`Portable`]): the reference
// every backend reproduces. A backend with tiles of its own (the CPU
// backend's AVX-512 code) calls the `_with` forms; the bits are the same.

/// [`fill_unit_with`] on the [`Portable`] tiles.
#[inline(always)]
pub fn fill_unit<T: Real>(key: NoiseKey, unit: Unit, start: u64, out: &mut [T]) {
    fill_unit_with(Portable, key, unit, start, out);
}

/// [`fill_noise_with`] on the [`Portable`] tiles.
///
/// # Errors
/// As [`fill_noise_with`].
#[inline(always)]
pub fn fill_noise<T: Real>(key: NoiseKey, noise: &Noise, start: u64, out: &mut [T]) -> Result<()> {
    fill_noise_with(Portable, key, noise, start, out)
}

/// [`perturb_with`] on the [`Portable`] tiles.
#[inline(always)]
pub fn perturb<T: Real>(draw: &ParamNoise<'_, T, [T]>, start: u64, w: &mut [T]) {
    perturb_with(Portable, draw, start, w);
}

/// [`denoise_with`] on the [`Portable`] tiles.
#[inline(always)]
pub fn denoise<T: Real>(draw: &ParamNoise<'_, T, [T]>, start: u64, w: &mut [T]) {
    denoise_with(Portable, draw, start, w);
}

/// [`write_noise_with`] on the [`Portable`] tiles.
///
/// # Errors
/// As [`write_noise_with`].
#[inline(always)]
pub fn write_noise<T: Real>(
    draw: &ParamNoise<'_, T, [T]>,
    start: u64,
    w: &[T],
    out: &mut [T],
) -> Result<()> {
    write_noise_with(Portable, draw, start, w, out)
}

/// [`drop_out_with`] on the [`Portable`] tiles.
///
/// # Errors
/// As [`drop_out_with`].
#[inline(always)]
pub fn drop_out<T: Real>(key: NoiseKey, p: f64, start: u64, w: &mut [T]) -> Result<()> {
    drop_out_with(Portable, key, p, start, w)
}

/// [`filter_scales_with`] on the [`Portable`] tiles.
///
/// # Errors
/// As [`filter_scales_with`].
#[inline(always)]
pub fn filter_scales<T: Real>(
    key: NoiseKey,
    unit: Unit,
    strength: f64,
    cols: usize,
    first_row: usize,
    w: &[T],
    out: &mut [T],
) -> Result<()> {
    filter_scales_with(Portable, key, unit, strength, cols, first_row, w, out)
}

/// [`perturb_filter_norm_with`] on the [`Portable`] tiles.
///
/// # Errors
/// As [`perturb_filter_norm_with`].
#[inline(always)]
pub fn perturb_filter_norm<T: Real>(
    key: NoiseKey,
    unit: Unit,
    strength: f64,
    cols: usize,
    first_row: usize,
    w: &mut [T],
    scales: &mut [T],
) -> Result<()> {
    perturb_filter_norm_with(Portable, key, unit, strength, cols, first_row, w, scales)
}

/// [`denoise_sgd_with`] on the [`Portable`] tiles.
///
/// # Errors
/// As [`denoise_sgd_with`].
#[inline(always)]
pub fn denoise_sgd<T: Real>(
    draw: Option<&ParamNoise<'_, T, [T]>>,
    start: u64,
    w: &mut [T],
    grad: &[T],
    velocity: &mut [T],
    sgd: &Sgd,
) -> Result<()> {
    denoise_sgd_with(Portable, draw, start, w, grad, velocity, sgd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass `filter_scales` equals the row-by-row definition,
    /// bit for bit, for rows shorter and longer than a tile and any offset.
    #[test]
    fn filter_scales_match_row_by_row_definition() {
        let key = NoiseKey::for_draw(5, 1, 0, 2);
        let mut w = [0f32; 700];
        for (i, x) in w.iter_mut().enumerate() {
            *x = ((i * 37 % 101) as f32 - 50.0) * 1e-3;
        }
        for unit in [Unit::Uniform, Unit::Gaussian] {
            for cols in [1usize, 3, 7, 64, 100, 350] {
                for first_row in [0usize, 1, 5] {
                    let rows = w.len() / cols;
                    let w = &w[..rows * cols];
                    let mut got = [0f32; 700];
                    filter_scales(key, unit, 0.5, cols, first_row, w, &mut got[..rows]).unwrap();
                    for r in 0..rows {
                        let start = ((first_row + r) * cols) as u64;
                        let un = unit_norm(key, unit, start, cols);
                        let want = (0.5 * norm(&w[r * cols..(r + 1) * cols]) / (un + 1e-6)) as f32;
                        assert_eq!(
                            got[r].to_bits(),
                            want.to_bits(),
                            "{unit:?} cols {cols} row {r}"
                        );
                    }
                }
            }
        }
    }

    /// The one-pass AdaSmoothOut perturbation equals scales then perturb,
    /// bit for bit, for short rows, rows crossing tiles and rows longer than
    /// the stack buffer.
    #[test]
    fn perturb_filter_norm_matches_two_passes() {
        let key = NoiseKey::for_draw(8, 3, 1, 4);
        for unit in [Unit::Uniform, Unit::Gaussian] {
            for (cols, rows) in [(1usize, 300usize), (7, 40), (100, 9), (ROW_BUFFER + 5, 2)] {
                for first_row in [0usize, 3] {
                    let n = cols * rows;
                    let w0: alloc::vec::Vec<f32> = (0..n)
                        .map(|i| ((i * 31 % 97) as f32 - 48.0) * 1e-3)
                        .collect();
                    let (mut a, mut b) = (w0.clone(), w0.clone());
                    let (mut sa, mut sb) = (alloc::vec![0f32; rows], alloc::vec![0f32; rows]);
                    perturb_filter_norm(key, unit, 0.3, cols, first_row, &mut a, &mut sa).unwrap();
                    filter_scales(key, unit, 0.3, cols, first_row, &w0, &mut sb).unwrap();
                    // `Scale::Rows` indexes scales by the row within the parameter.
                    let mut all = alloc::vec![0f32; first_row + rows];
                    all[first_row..].copy_from_slice(&sb);
                    let noise = ParamNoise {
                        key,
                        unit,
                        scale: Scale::Rows {
                            cols,
                            scales: &all[..],
                        },
                    };
                    perturb(&noise, (first_row * cols) as u64, &mut b);
                    assert_eq!(sa, sb, "{unit:?} cols {cols}");
                    assert!(
                        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{unit:?} cols {cols}"
                    );
                }
            }
        }
    }

    #[test]
    fn copy_range_copies_and_checks_bounds() {
        let src = [1.0f32, 2.0, 3.0, 4.0];
        let mut dst = [0.0f32; 3];
        copy_range(&src, 1, &mut dst, 1, 2).unwrap();
        assert_eq!(dst, [0.0, 2.0, 3.0]);
        copy_range(&src, 4, &mut dst, 3, 0).unwrap();
        assert!(matches!(
            copy_range(&src, 3, &mut dst, 0, 2),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            copy_range(&src, 0, &mut dst, 2, 2),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(copy_range(&src, usize::MAX, &mut dst, 0, 2).is_err());
    }
}
