//! The per-channel reductions shared by batch norm and `bias_grad`: the
//! emulated `channel_sums` and a model of their documented order.

use super::*;

/// Index of term `t` of channel `ch` in a `[outer, channels, inner]`
/// tensor (tensor.cu's `so_channel_at`).
pub(crate) fn channel_at(t: u64, ch: u64, channels: u64, inner: u64) -> usize {
    let o = t / inner;
    ((o * channels + ch) * inner + (t - o * inner)) as usize
}

/// The order of tensor.cu's per-channel reductions, as its comments give
/// it: per slice `[k·per, (k + 1)·per) ∩ [0, m)` of src/tensor.rs's
/// `slices_of(m)`, thread `tid` sums terms `t0 + tid, + 256, …` from
/// `start`; the block adds its 256 sums with the tree `h = 128, 64, …, 1`;
/// then the slices are added in order, from `start`.
pub(crate) fn model_channel_sum(m: u64, start: f64, term: impl Fn(u64) -> f64) -> f64 {
    let (slices, per) = slices_of(m);
    let block = u64::from(THREADS);
    let mut total = start;
    for k in 0..slices {
        let (t0, t1) = (k * per, ((k + 1) * per).min(m));
        let mut sh: Vec<f64> = (0..block)
            .map(|tid| {
                (t0 + tid..t1)
                    .step_by(block as usize)
                    .fold(start, |acc, t| acc + term(t))
            })
            .collect();
        let mut h = sh.len() / 2;
        while h > 0 {
            for i in 0..h {
                sh[i] += sh[i + h];
            }
            h /= 2;
        }
        total += sh[0];
    }
    total
}

/// src/tensor.rs's `channel_sums`: `channel_partials` (every launch of
/// [`channel_launches`], which must agree bit for bit), then
/// `channel_finish` (every launch of [`launches`], likewise). Returns
/// `(out64, out32)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn channel_sums(
    emu: &Emu,
    x: &[f32],
    centre: Option<&[f64]>,
    channels: usize,
    inner: usize,
    divisor: f64,
    what: &str,
    tally: &mut Tally,
) -> (Vec<f64>, Vec<f32>) {
    let (channels, inner) = (channels as u64, inner as u64);
    let m = x.len() as u64 / channels;
    let (slices, per) = slices_of(m);
    let parts = (channels * slices) as usize;
    let xb = Buf::new(x);
    let (cb, squares) = match centre {
        Some(c) => (Buf::new(c), 1i32),
        None => (Buf::new(&[0.0f64]), 0),
    };
    let mut partial: Option<Vec<f64>> = None;
    for (gx, gy, order) in channel_launches(channels, slices) {
        let what = format!("{what}: channel_partials grid {gx}x{gy} order {order}");
        let mut pb = Buf::<f64>::poison(parts);
        // SAFETY: x holds channels·m floats, centre channels doubles (or the
        // unused dummy), partial channels·slices doubles.
        check(
            unsafe {
                (emu.channel_partials)(
                    gx,
                    gy,
                    THREADS,
                    order,
                    xb.cptr(),
                    cb.cptr(),
                    channels,
                    inner,
                    m,
                    per,
                    squares,
                    pb.ptr(),
                )
            },
            &what,
        );
        tally.launch();
        let got = pb.get(&what).to_vec();
        tally.repeat(&what, &mut partial, got);
    }
    let partial = Buf::new(&partial.expect("a launch"));
    let mut out: Option<(Vec<f64>, Vec<f32>)> = None;
    for (gx, bx) in launches(channels) {
        let what = format!("{what}: channel_finish grid {gx}x{bx}");
        let (mut o64, mut o32) = (
            Buf::<f64>::poison(channels as usize),
            Buf::<f32>::poison(channels as usize),
        );
        // SAFETY: partial holds channels·slices doubles, the outputs
        // channels elements each.
        check(
            unsafe {
                (emu.channel_finish)(
                    gx,
                    bx,
                    partial.cptr(),
                    channels,
                    slices,
                    divisor,
                    o64.ptr(),
                    o32.ptr(),
                )
            },
            &what,
        );
        tally.launch();
        let got = (o64.get(&what).to_vec(), o32.get(&what).to_vec());
        tally.repeat(&what, &mut out, got);
    }
    partial.get(what);
    out.expect("a launch")
}
