//! Pooling forward and backward, max and average (ties, NaN and all-NaN
//! windows).

use super::*;

/// Pooling input: multiples of 1/4 in [−1, 1] (ties, +0.0 and −0.0), a
/// NaN every 11 elements, −∞ every 37, and (with several planes) the
/// first plane all NaN, so that some windows are all NaN.
fn pool_input(p: &Pool2d, salt: u64) -> Vec<f32> {
    let plane = p.height * p.width;
    data(p.planes() * plane, salt)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if (p.planes() > 1 && i < plane) || i % 11 == 5 {
                f32::NAN
            } else if i % 37 == 36 {
                f32::NEG_INFINITY
            } else {
                (v * 4.0).round() / 4.0
            }
        })
        .collect()
}

#[test]
fn pooling_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // (batch, channels, height, width, kernel, stride, padding): 3 × 3
    // stride 2 padding 1 and 2 × 2 stride 2, overlapping windows at stride
    // 1, a 1 × 1 image, testgen's tie case.
    for (s, &(batch, channels, height, width, kernel, stride, padding)) in [
        (2usize, 3usize, 5usize, 7usize, 3usize, 2usize, 1usize),
        (2, 3, 5, 7, 2, 2, 0),
        (8, 16, 8, 8, 3, 2, 1),
        (8, 16, 8, 8, 2, 2, 0),
        (2, 2, 6, 6, 3, 1, 1),
        (300, 4, 1, 1, 1, 1, 0),
        (300, 4, 1, 1, 2, 1, 1),
        (1, 1, 3, 3, 2, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let p = Pool2d {
                batch,
                channels,
                height,
                width,
                kernel,
                stride,
                padding,
                kind,
            };
            p.validate().expect("a valid pooling");
            let (sizes, kind_c) = pool_args(&p);
            let salt = 200 + 10 * s as u64;
            let x = pool_input(&p, salt);
            let yn = p.planes() * p.out_h() * p.out_w();
            let dy = data(yn, salt + 1);

            let mut want = vec![f32::NAN; yn];
            r::pool_forward(&p, &x, &mut want).expect("reference forward");
            for (gx, bx) in launches(yn as u64) {
                let what = format!("pool_forward {p:?} grid {gx}x{bx}");
                let xb = Buf::new(&x);
                let mut y = Buf::<f32>::poison(yn);
                // SAFETY: x and y hold the sizes pool_args describes.
                check(
                    unsafe { (emu.pool_forward)(gx, bx, xb.cptr(), y.ptr(), &sizes, kind_c) },
                    &what,
                );
                tally.launch();
                tally.exact(same(&what, y.get(&what), &want));
            }

            let mut want = vec![f32::NAN; x.len()];
            r::pool_backward(&p, &x, &dy, &mut want).expect("reference backward");
            for (gx, bx) in launches(x.len() as u64) {
                let what = format!("pool_backward {p:?} grid {gx}x{bx}");
                let (xb, dyb) = (Buf::new(&x), Buf::new(&dy));
                let mut dx = Buf::<f32>::poison(x.len());
                // SAFETY: x, dy and dx hold the sizes pool_args describes.
                check(
                    unsafe {
                        (emu.pool_backward)(gx, bx, xb.cptr(), dyb.cptr(), dx.ptr(), &sizes, kind_c)
                    },
                    &what,
                );
                tally.launch();
                tally.exact(same(&what, dx.get(&what), &want));
            }
        }
    }
    tally.report("pool_forward, pool_backward");
}
