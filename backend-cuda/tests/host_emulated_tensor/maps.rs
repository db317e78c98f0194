//! The element-wise maps and `add_bias`.

use super::*;
use smoothout::testgen::tensor::MAPS_BIASES;

#[test]
fn maps_and_add_bias_match_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    let reference = Reference::<f32>::new();
    for (s, n) in [1usize, 3, 65, 1000, 4099, 100_003].into_iter().enumerate() {
        // testgen's maps data, with ±0, NaN, ±∞ and a subnormal.
        let mut x = data(n, 400 + s as u64);
        for (i, v) in [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40]
            .into_iter()
            .enumerate()
            .take(n)
        {
            x[i] = v;
        }
        let y = data(n, 500 + s as u64);
        let dy = data(n, 600);
        let n64 = n as u64;
        let alpha = -0.7f32;
        type Want = fn(&Reference<f32>, &[f32], &[f32], f32, &mut Vec<f32>);
        // (name, reference applied to y, the kernel launch).
        let cases: [(&str, Want); 7] = [
            ("relu", |b, x, _, _, y| b.relu(&x.to_vec(), y).unwrap()),
            ("relu_backward", |b, x, dy, _, y| {
                b.relu_backward(&x.to_vec(), &dy.to_vec(), y).unwrap()
            }),
            ("scale", |b, _, _, a, y| b.scale(a, y).unwrap()),
            ("add", |b, x, _, _, y| b.add(&x.to_vec(), y).unwrap()),
            ("mul", |b, x, _, _, y| b.mul(&x.to_vec(), y).unwrap()),
            ("fill", |b, _, _, a, y| b.fill(a, y).unwrap()),
            ("fill -0", |b, _, _, _, y| b.fill(-0.0, y).unwrap()),
        ];
        for (name, want_fn) in cases {
            let mut want = y.clone();
            want_fn(&reference, &x, &dy, alpha, &mut want);
            for (gx, bx) in launches(n64) {
                let what = format!("{name} n {n} grid {gx}x{bx}");
                let (xb, dyb) = (Buf::new(&x), Buf::new(&dy));
                let mut yb = Buf::new(&y);
                // SAFETY: every buffer holds n floats; the arguments are
                // src/tensor.rs's, in the kernel's order.
                let status = unsafe {
                    match name {
                        "relu" => (emu.map_relu)(gx, bx, xb.cptr(), yb.ptr(), n64),
                        "relu_backward" => {
                            (emu.map_relu_backward)(gx, bx, xb.cptr(), dyb.cptr(), yb.ptr(), n64)
                        }
                        "scale" => (emu.map_scale)(gx, bx, alpha, yb.ptr(), n64),
                        "add" => (emu.map_add)(gx, bx, xb.cptr(), yb.ptr(), n64),
                        "mul" => (emu.map_mul)(gx, bx, xb.cptr(), yb.ptr(), n64),
                        "fill" => (emu.map_fill)(gx, bx, alpha, yb.ptr(), n64),
                        _ => (emu.map_fill)(gx, bx, -0.0, yb.ptr(), n64),
                    }
                };
                check(status, &what);
                tally.launch();
                same(&format!("{what} (x)"), xb.get(&what), &x);
                tally.exact(same(&what, yb.get(&what), &want));
            }
        }
    }
    // add_bias: testgen's maps cases (linear, inner 1, and convolution
    // layouts), then larger ones; one block.
    let more = [(8, 16, 64), (300, 4, 1), (2, 3, 35)];
    for (s, &(outer, channels, inner)) in MAPS_BIASES.iter().chain(&more).enumerate() {
        let n = outer * channels * inner;
        let x = data(n, 700 + s as u64);
        let bias = data(channels, 800 + s as u64);
        let mut want = x.clone();
        reference
            .add_bias(&bias, inner, &mut want)
            .expect("reference");
        let (n64, c64, i64_) = (n as u64, channels as u64, inner as u64);
        for (gx, bx) in launches(n64) {
            let what = format!("add_bias {outer}×{channels}×{inner} grid {gx}x{bx}");
            let bb = Buf::new(&bias);
            let mut xb = Buf::new(&x);
            // SAFETY: bias holds channels floats, x n.
            check(
                unsafe { (emu.add_bias)(gx, bx, bb.cptr(), xb.ptr(), n64, c64, i64_) },
                &what,
            );
            tally.launch();
            tally.exact(same(&what, xb.get(&what), &want));
        }
    }
    tally.report("maps, add_bias");
}
