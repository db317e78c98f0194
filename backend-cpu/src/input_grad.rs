//! A stride-1 convolution's input gradient for one image ([`Same`]
//! geometry) in AVX-512 for `f32`, without its columns: the provided
//! method computes `dcol = Wᵀ · dy` (a row per kernel tap `(c, ky, kx)`, a
//! column per output pixel) and then folds it into `dx` with col2im; here
//! each element of `dx` gets the same terms in the same order, straight
//! from `W` and `dy`.
//!
//! The bits: col2im adds into `dx[c][y][x]`, row by row of `dcol` (taps in
//! the order of `(ky, kx)`), the element of each tap whose output pixel
//! `(y + pad − ky, x + pad − kx)` lies in the output, one rounding per
//! addition. Each such element of `dcol` is a dot product over the filters
//! that [`crate::direct_gemm`] (as `matrixmultiply`) sums in blocks of
//! [`KC`] filters, each block a chain of fused multiply-adds from zero in
//! the order of the filters, the blocks added in order. [`input_grad_same`]
//! computes each term as that chain and adds it to `dx` under a mask of the
//! lanes whose tap exists, so each element of `dx` sees the same additions
//! of the same values: the same bits, with no `dcol` written and read back
//! (for a 3 × 3 kernel nine times the size of `dx`).
//!
//! A tile of [`CB`] channels by [`V`] vectors of pixels keeps its part of
//! `dx` in registers from the first tap to the last; for each group of
//! pixels every block of channels runs in turn, so the rows of `dy` the
//! group reads stay in cache. On ResNet-44's three shapes (batch 128, 2
//! threads), taking the channels outside the pixels instead ran the input
//! gradient at 95–171 GFLOP/s, this order at 142–195 (the forward product
//! at 137–191); of the tiles tried, 8 × 2 and 4 × 4 were equally fast,
//! 4 × 2 and 8 × 1 slower at 16 channels of 32 × 32.

use crate::direct_gemm::KC;
use crate::same::Same;
use core::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_add_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
};

/// `f32` lanes per vector.
const LANES: usize = 16;
/// Input channels whose terms are summed side by side (each filter's
/// vector of `dy` is loaded once for all of them).
const CB: usize = 8;
/// Vectors of pixels summed side by side (each tap weight is broadcast
/// once for all of them).
const V: usize = 2;

/// `dx += col2im(wᵀ · dy)` for one image: `w` holds `filters × rows`
/// (`rows = channels · kernel_h · kernel_w`), `dy` `filters × pixels`
/// (`pixels = out_h · width`), `dx` `channels × height × width`. The same
/// bits as [`crate::direct_gemm::gemm`]'s product `wᵀ · dy` (β = 0)
/// followed by col2im (see the module).
///
/// # Safety
/// AVX-512F must be available. (The lengths and the geometry are checked.)
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn input_grad_same(
    geometry: Same,
    w: &[f32],
    filters: usize,
    dy: &[f32],
    dx: &mut [f32],
) {
    let (rows, pixels) = geometry.checked();
    let (channels, plane) = (geometry.channels, geometry.height * geometry.width);
    if filters == 0 || rows == 0 || plane == 0 {
        return;
    }
    assert!(w.len() >= filters * rows && dy.len() >= filters * pixels);
    assert!(dx.len() >= channels * plane);
    for p0 in (0..plane).step_by(V * LANES) {
        let group = Group::new(&geometry, p0);
        for c0 in (0..channels).step_by(CB) {
            // SAFETY: the asserts bound `w`, `dy` and `dx` (see
            // `Group::add`).
            unsafe { group.add(&geometry, c0, (w, filters), dy, dx) };
        }
    }
}

/// Up to `V · 16` pixels of `dx` from `p0`, with the lanes each tap
/// reaches.
struct Group {
    p0: usize,
    /// Per vector, its lanes inside the plane.
    inside: [__mmask16; V],
    /// Per kernel row and vector, the lanes whose output row
    /// `y + pad − ky` lies in the output.
    rows: [[__mmask16; V]; Same::MAX_KERNEL],
    /// The same for each kernel column and the output column.
    cols: [[__mmask16; V]; Same::MAX_KERNEL],
}

impl Group {
    fn new(g: &Same, p0: usize) -> Self {
        let plane = g.height * g.width;
        let mut group = Group {
            p0,
            inside: [0; V],
            rows: [[0; V]; Same::MAX_KERNEL],
            cols: [[0; V]; Same::MAX_KERNEL],
        };
        for lane in 0..(plane - p0).min(V * LANES) {
            let (y, x) = ((p0 + lane) / g.width, (p0 + lane) % g.width);
            let (v, bit) = (lane / LANES, 1 << (lane % LANES));
            group.inside[v] |= bit;
            for (ky, rows) in group.rows.iter_mut().enumerate().take(g.kernel_h) {
                if (y + g.padding).checked_sub(ky).is_some_and(|r| r < g.out_h) {
                    rows[v] |= bit;
                }
            }
            for (kx, cols) in group.cols.iter_mut().enumerate().take(g.kernel_w) {
                if (x + g.padding).checked_sub(kx).is_some_and(|c| c < g.width) {
                    cols[v] |= bit;
                }
            }
        }
        group
    }

    /// Adds every tap's terms into the group's pixels of up to [`CB`]
    /// channels of `dx` from `c0`, taps in order.
    ///
    /// # Safety
    /// AVX-512F; `w`, `dy` and `dx` as [`input_grad_same`] checks them.
    #[target_feature(enable = "avx512f")]
    unsafe fn add(
        &self,
        g: &Same,
        c0: usize,
        (w, filters): (&[f32], usize),
        dy: &[f32],
        dx: &mut [f32],
    ) {
        // Channels in the tile.
        let cb = (g.channels - c0).min(CB);
        let (rows, pixels) = (g.channels * g.kernel_h * g.kernel_w, g.out_h * g.width);
        let plane = g.height * g.width;
        let out = dx.as_mut_ptr().wrapping_add(c0 * plane + self.p0);
        // SAFETY: the tile's channels and its lanes inside the plane lie in
        // `dx`.
        let mut acc: [[__m512; V]; CB] = core::array::from_fn(|i| {
            let i = i.min(cb - 1);
            core::array::from_fn(|v| unsafe {
                _mm512_maskz_loadu_ps(self.inside[v], out.add(i * plane + v * LANES))
            })
        });
        for ky in 0..g.kernel_h {
            if self.rows[ky] == [0; V] {
                continue;
            }
            for kx in 0..g.kernel_w {
                let taps: [__mmask16; V] =
                    core::array::from_fn(|v| self.inside[v] & self.rows[ky][v] & self.cols[kx][v]);
                // Output pixel of the tile's first pixel for this tap (an
                // offset that may lie outside `dy`, for masked lanes only).
                let shift = (g.padding as isize - ky as isize) * g.width as isize
                    + g.padding as isize
                    - kx as isize;
                let from = dy.as_ptr().wrapping_offset(self.p0 as isize + shift);
                // The tap's weight for each channel (a short tile repeats its
                // last channel and stores only its own).
                let tap: [*const f32; CB] = core::array::from_fn(|i| {
                    let c = c0 + i.min(cb - 1);
                    w.as_ptr()
                        .wrapping_add((c * g.kernel_h + ky) * g.kernel_w + kx)
                });
                let block = |f0: usize| {
                    let mut s = [[_mm512_setzero_ps(); V]; CB];
                    for f in f0..(f0 + KC).min(filters) {
                        // SAFETY: lanes under `taps` read output pixels inside
                        // `dy`'s row of filter `f`; masked lanes are not read.
                        let dyv: [__m512; V] = core::array::from_fn(|v| unsafe {
                            _mm512_maskz_loadu_ps(taps[v], from.add(f * pixels + v * LANES))
                        });
                        for i in 0..CB {
                            // SAFETY: element (f, tap) of `w`, f < filters.
                            let a = _mm512_set1_ps(unsafe { *tap[i].add(f * rows) });
                            for v in 0..V {
                                s[i][v] = _mm512_fmadd_ps(a, dyv[v], s[i][v]);
                            }
                        }
                    }
                    s
                };
                let mut t = block(0);
                for f0 in (KC..filters).step_by(KC) {
                    let s = block(f0);
                    for (t, s) in t.iter_mut().zip(s) {
                        for (t, s) in t.iter_mut().zip(s) {
                            *t = _mm512_add_ps(s, *t);
                        }
                    }
                }
                for (acc, t) in acc.iter_mut().zip(t) {
                    for v in 0..V {
                        acc[v] = _mm512_mask_add_ps(acc[v], taps[v], acc[v], t[v]);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate().take(cb) {
            for (v, (&acc, &inside)) in acc.iter().zip(&self.inside).enumerate() {
                // SAFETY: as the loads above.
                unsafe { _mm512_mask_storeu_ps(out.add(i * plane + v * LANES), inside, acc) };
            }
        }
    }
}
