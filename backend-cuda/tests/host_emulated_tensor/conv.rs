//! Convolution: `im2col` and `col2im` (accumulating into `x`).

use super::*;

#[test]
fn im2col_and_col2im_match_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // (batch, channels, height, width, kh, kw, stride, padding): 3 × 3 and
    // 1 × 1 kernels at strides 1 and 2 with padding 1 (a 1 × 1 kernel with
    // padding reads only zeros at the border), a non-square kernel, 1 × 1
    // images, a stride larger than the kernel.
    for (s, &(batch, channels, height, width, kh, kw, stride, padding)) in [
        (
            2usize, 3usize, 5usize, 7usize, 3usize, 3usize, 1usize, 1usize,
        ),
        (2, 3, 5, 7, 3, 3, 2, 1),
        (2, 3, 5, 7, 3, 2, 2, 1),
        (2, 3, 5, 7, 1, 1, 2, 1),
        (8, 16, 8, 8, 3, 3, 1, 1),
        (8, 16, 8, 8, 3, 3, 2, 1),
        (8, 16, 8, 8, 1, 1, 1, 0),
        (8, 16, 8, 8, 1, 1, 2, 0),
        (300, 4, 1, 1, 1, 1, 1, 0),
        (300, 4, 1, 1, 3, 3, 1, 1),
        (1, 2, 6, 6, 2, 2, 2, 0),
        (1, 1, 7, 5, 2, 3, 3, 1),
    ]
    .iter()
    .enumerate()
    {
        let conv = Conv2d {
            batch,
            channels,
            height,
            width,
            kernel_h: kh,
            kernel_w: kw,
            stride,
            padding,
        };
        conv.validate().expect("a valid convolution");
        let sizes = conv_args(&conv);
        let xn = batch * conv.image_len();
        let cn = batch * conv.col_rows() * conv.col_cols();
        let x = data(xn, 100 + 10 * s as u64);
        let cols = data(cn, 101 + 10 * s as u64);

        let mut want_col = vec![f32::NAN; cn];
        r::im2col(&conv, &x, &mut want_col).expect("reference im2col");
        // col2im accumulates into x (not zero).
        let x0 = data(xn, 102 + 10 * s as u64);
        let mut want_x = x0.clone();
        r::col2im(&conv, &cols, &mut want_x).expect("reference col2im");
        // (name, kernel, input, output before, reference output): the
        // output gives the grid-stride work.
        type Case<'a> = (&'a str, ConvFn, &'a [f32], &'a [f32], &'a [f32]);
        let cases: [Case<'_>; 2] = [
            ("im2col", emu.im2col, &x, &vec![f32::POISON; cn], &want_col),
            ("col2im", emu.col2im, &cols, &x0, &want_x),
        ];
        for (name, kernel, input, out0, want) in cases {
            for (gx, bx) in launches(out0.len() as u64) {
                let what = format!("{name} {conv:?} grid {gx}x{bx}");
                let ib = Buf::new(input);
                let mut ob = Buf::new(out0);
                // SAFETY: the input and output hold the sizes conv_args
                // describes (x, col for im2col; col, x for col2im).
                check(
                    unsafe { kernel(gx, bx, ib.cptr(), ob.ptr(), &sizes) },
                    &what,
                );
                tally.launch();
                same(&format!("{what} (input)"), ib.get(&what), input);
                tally.exact(same(&what, ob.get(&what), want));
            }
        }
    }
    tally.report("im2col, col2im");
}
