//! Batch norm: statistics, forward, `dγ`, `dβ` and `dx`.

use super::*;
use crate::reductions::{channel_at, channel_sums, model_channel_sum};

/// `(batch, channels, spatial, ε)` beyond tests/tensor.rs's shapes ([`BNS`]:
/// 2 × 3 × 5 × 7, 64 × 16 × 8 × 8, BatchNorm1d, odd sizes, one element,
/// ε = 0, 2 and 3 slices per channel): 8 × 16 × 8 × 8, 300 × 4 × 1 × 1, and
/// 3 slices of which the last is shorter (4 × 5000 = 20 000 = 6667 + 6667 +
/// 6666).
const MORE_BNS: [(usize, usize, usize, f64); 3] =
    [(8, 16, 64, 1e-5), (300, 4, 1, 1e-5), (4, 3, 5000, 1e-5)];

#[test]
fn batch_norm_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    let reference = Reference::<f32>::new();
    let mut multi_slice = 0;
    let rows = [&BNS[..], &MORE_BNS].concat();
    for (s, bn) in batch_norm_layouts(&rows) {
        let BatchNorm {
            batch,
            channels,
            spatial,
            eps,
        } = bn;
        let what = format!("{bn:?}");
        // tests/tensor.rs's data.
        let (x, dy, gamma, beta) = bn_inputs(&bn, s);
        let m = batch * spatial;
        let m64 = m as u64;
        let (slices, per) = slices_of(m64);
        multi_slice += usize::from(slices >= 2);
        let (ch64, sp64, n64) = (channels as u64, spatial as u64, bn.len() as u64);

        // Statistics: src/tensor.rs's batch_norm_stats.
        let inputs = [&x[..], &dy, &gamma, &beta];
        let [m0, v0, y0, dx0, dg0, db0] = batch_norm_passes(&reference, &|v| v, bn, inputs);
        let mf = m as f64;
        let (mean64, mean) = channel_sums(
            emu,
            &x,
            None,
            channels,
            spatial,
            mf,
            &format!("mean {what}"),
            &mut tally,
        );
        let (var64, var) = channel_sums(
            emu,
            &x,
            Some(&mean64),
            channels,
            spatial,
            mf,
            &format!("var {what}"),
            &mut tally,
        );
        // The order model, bit for bit.
        for c in 0..channels {
            let c64 = c as u64;
            let at = |t| channel_at(t, c64, ch64, sp64);
            let want_mean = model_channel_sum(m64, -0.0, |t| f64::from(x[at(t)])) / mf;
            let want_var = model_channel_sum(m64, -0.0, |t| {
                let d = f64::from(x[at(t)]) - mean64[c];
                d * d
            }) / mf;
            tally.exact(same(
                &format!("mean {what} channel {c} (model)"),
                &[mean64[c]],
                &[want_mean],
            ));
            tally.exact(same(
                &format!("var {what} channel {c} (model)"),
                &[var64[c]],
                &[want_var],
            ));
        }
        same(
            &format!("mean {what} (rounded)"),
            &mean,
            &mean64.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        );
        same(
            &format!("var {what} (rounded)"),
            &var,
            &var64.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        );
        // The reference, within tests/tensor.rs's bounds.
        for counts in check_bn_stats(&what, &bn, &x, (&mean, &var), (&m0, &v0)) {
            tally.bounded(counts);
        }

        // Forward with the reference's statistics: bit for bit.
        let (xb, gb, bb) = (Buf::new(&x), Buf::new(&gamma), Buf::new(&beta));
        let (m0b, v0b) = (Buf::new(&m0), Buf::new(&v0));
        for (gx, bx) in launches(n64) {
            let w = format!("bn_forward {what} grid {gx}x{bx}");
            let mut y = Buf::<f32>::poison(bn.len());
            // SAFETY: x and y hold n floats, the per-channel buffers channels.
            check(
                unsafe {
                    (emu.bn_forward)(
                        gx,
                        bx,
                        xb.cptr(),
                        gb.cptr(),
                        bb.cptr(),
                        m0b.cptr(),
                        v0b.cptr(),
                        eps,
                        n64,
                        ch64,
                        sp64,
                        y.ptr(),
                    )
                },
                &w,
            );
            tally.launch();
            tally.exact(same(&w, y.get(&w), &y0));
        }

        // Backward with the reference's statistics: src/tensor.rs's
        // batch_norm_backward.
        let dyb = Buf::new(&dy);
        let parts = channels * slices as usize;
        let mut grads: Option<(Vec<f64>, Vec<f64>)> = None;
        for (gx, gy, order) in channel_launches(ch64, slices) {
            let w = format!("bn_grad_partials {what} grid {gx}x{gy} order {order}");
            let (mut pg, mut pb) = (Buf::<f64>::poison(parts), Buf::<f64>::poison(parts));
            // SAFETY: x and dy hold n floats, mean and var channels, the
            // partials channels·slices doubles each.
            check(
                unsafe {
                    (emu.bn_grad_partials)(
                        gx,
                        gy,
                        THREADS,
                        order,
                        xb.cptr(),
                        dyb.cptr(),
                        m0b.cptr(),
                        v0b.cptr(),
                        eps,
                        ch64,
                        sp64,
                        m64,
                        per,
                        pg.ptr(),
                        pb.ptr(),
                    )
                },
                &w,
            );
            tally.launch();
            let got = (pg.get(&w).to_vec(), pb.get(&w).to_vec());
            tally.repeat(&w, &mut grads, got);
        }
        let (pg, pb) = grads.expect("a launch");
        let (pgb, pbb) = (Buf::new(&pg), Buf::new(&pb));
        let mut finished: Option<(Vec<f64>, Vec<f32>, Vec<f32>)> = None;
        for (gx, bx) in launches(ch64) {
            let w = format!("bn_grad_finish {what} grid {gx}x{bx}");
            let mut sums = Buf::<f64>::poison(2 * channels);
            let (mut dg, mut db) = (Buf::<f32>::poison(channels), Buf::<f32>::poison(channels));
            // SAFETY: the partials hold channels·slices doubles, sums
            // 2·channels, dgamma and dbeta channels floats.
            check(
                unsafe {
                    (emu.bn_grad_finish)(
                        gx,
                        bx,
                        pgb.cptr(),
                        pbb.cptr(),
                        ch64,
                        slices,
                        sums.ptr(),
                        dg.ptr(),
                        db.ptr(),
                    )
                },
                &w,
            );
            tally.launch();
            let got = (
                sums.get(&w).to_vec(),
                dg.get(&w).to_vec(),
                db.get(&w).to_vec(),
            );
            tally.repeat(&w, &mut finished, got);
        }
        let (sums, dgamma, dbeta) = finished.expect("a launch");
        let centres = r::batch_norm_centres(&bn, &m0, &v0);
        // The order model, bit for bit.
        let (mut dg64, mut db64) = (vec![0.0f64; channels], vec![0.0f64; channels]);
        for c in 0..channels {
            let (mu, inv) = centres[c];
            let at = |t| channel_at(t, c as u64, ch64, sp64);
            let want_g = model_channel_sum(m64, 0.0, |t| {
                f64::from(dy[at(t)]) * ((f64::from(x[at(t)]) - mu) * inv)
            });
            let want_b = model_channel_sum(m64, 0.0, |t| f64::from(dy[at(t)]));
            let w = format!("bn grads {what} channel {c} (model)");
            tally.exact(same(&w, &sums[2 * c..2 * c + 2], &[want_g, want_b]));
            tally.exact(same(
                &w,
                &[dgamma[c], dbeta[c]],
                &[want_g as f32, want_b as f32],
            ));
            (dg64[c], db64[c]) = (sums[2 * c], sums[2 * c + 1]);
        }
        // dx from the emulated sums by the reference's own formula.
        let coefs = r::batch_norm_backward_coefs(&bn, &gamma, &centres, &dg64, &db64);
        let per_sample = channels * spatial;
        let mut dx_model = vec![f32::NAN; bn.len()];
        for ((xs, dys), dxs) in x
            .chunks(per_sample)
            .zip(dy.chunks(per_sample))
            .zip(dx_model.chunks_mut(per_sample))
        {
            r::batch_norm_backward_sample(&bn, xs, dys, &coefs, dxs);
        }
        let sb = Buf::new(&sums);
        let mut dx_first: Option<Vec<f32>> = None;
        for (gx, bx) in launches(n64) {
            let w = format!("bn_backward {what} grid {gx}x{bx}");
            let mut dx = Buf::<f32>::poison(bn.len());
            // SAFETY: x, dy and dx hold n floats, gamma, mean and var
            // channels, sums 2·channels doubles.
            check(
                unsafe {
                    (emu.bn_backward)(
                        gx,
                        bx,
                        xb.cptr(),
                        dyb.cptr(),
                        gb.cptr(),
                        m0b.cptr(),
                        v0b.cptr(),
                        sb.cptr(),
                        eps,
                        mf,
                        n64,
                        ch64,
                        sp64,
                        dx.ptr(),
                    )
                },
                &w,
            );
            tally.launch();
            let got = dx.get(&w).to_vec();
            tally.exact(same(&format!("{w} (reference formula)"), &got, &dx_model));
            if dx_first.is_none() {
                dx_first = Some(got);
            }
        }
        let dx = dx_first.expect("a launch");
        // The reference, within tests/tensor.rs's bounds.
        for counts in check_bn_grads(
            &what,
            &bn,
            &x,
            &dy,
            &gamma,
            &centres,
            [&dgamma, &dbeta, &dx],
            [&dg0, &db0, &dx0],
        ) {
            tally.bounded(counts);
        }
    }
    assert!(multi_slice >= 3, "too few shapes with several slices");
    tally.report(
        "batch norm (channel_partials, channel_finish, bn_forward, bn_grad_partials, \
         bn_grad_finish, bn_backward)",
    );
}
