//! `bias_grad`: the per-channel sum of `dy`.

use super::*;
use crate::reductions::{channel_at, channel_sums, model_channel_sum};
use smoothout::testgen::tensor::MAPS_BIASES;

/// src/tensor.rs's `bias_grad`: −0.0 (`fill`) for no rows, else
/// `channel_sums` with divisor 1.
fn emulated_bias_grad(
    emu: &Emu,
    dy: &[f32],
    channels: usize,
    inner: usize,
    what: &str,
    tally: &mut Tally,
) -> (Vec<f64>, Vec<f32>) {
    if dy.is_empty() {
        let n = channels as u64;
        let mut db = Buf::<f32>::poison(channels);
        // SAFETY: db holds channels floats.
        check(
            unsafe { (emu.map_fill)(grid(n), THREADS, -0.0, db.ptr(), n) },
            what,
        );
        tally.launch();
        return (vec![-0.0; channels], db.get(what).to_vec());
    }
    channel_sums(emu, dy, None, channels, inner, 1.0, what, tally)
}

#[test]
fn bias_grad_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    let reference = Reference::<f32>::new();
    let reference_bias_grad = |dy: &Vec<f32>, channels: usize, inner: usize| {
        let mut want = vec![f32::NAN; channels];
        reference
            .bias_grad(dy, inner, &mut want)
            .expect("reference");
        want
    };
    // tests/tensor.rs's shapes (outer, channels, inner) and salts, then
    // 300 × 4 × 1, no rows, and a channel of −0.0 only (its sum is −0.0:
    // every sum starts from −0.0, as Rust's f64 `sum`).
    for (s, &shape) in BIAS_GRADS
        .iter()
        .chain(&[(300, 4, 1), (0, 3, 2), (4, 3, 5)])
        .enumerate()
    {
        let (outer, channels, inner) = shape;
        let mut dy = bias_grad_input(shape, s);
        if (outer, channels, inner) == (4, 3, 5) {
            for o in 0..outer {
                dy[(o * channels + 1) * inner..(o * channels + 2) * inner].fill(-0.0);
            }
        }
        let what = format!("bias_grad {outer}×{channels}×{inner}");
        let want = reference_bias_grad(&dy, channels, inner);
        let (sums, got) = emulated_bias_grad(emu, &dy, channels, inner, &what, &mut tally);
        if dy.is_empty() {
            tally.exact(same(&what, &got, &want));
            continue;
        }
        let m = outer * inner;
        for c in 0..channels {
            let model = model_channel_sum(m as u64, -0.0, |t| {
                f64::from(dy[channel_at(t, c as u64, channels as u64, inner as u64)])
            });
            let w = format!("{what} channel {c} (model)");
            tally.exact(same(&w, &[sums[c]], &[model]) + same(&w, &[got[c]], &[model as f32]));
        }
        tally.bounded(check_bias_grad(&what, shape, &dy, &got, &want));
    }
    // The shapes and data of smoothout::testgen::tensor::maps, which the GPU
    // test compares bit for bit: tests/tensor.rs's table says these sums
    // round to the reference's bits.
    for (s, &(outer, channels, inner)) in MAPS_BIASES.iter().enumerate() {
        let dy = data(outer * channels * inner, 700 + s as u64);
        let what = format!("bias_grad (maps) {outer}×{channels}×{inner}");
        let want = reference_bias_grad(&dy, channels, inner);
        let (_, got) = emulated_bias_grad(emu, &dy, channels, inner, &what, &mut tally);
        tally.exact(same(&what, &got, &want));
    }
    tally.report("bias_grad (channel_partials, channel_finish, map_fill)");
}
