//! Softmax cross-entropy (`softmax_xent_rows`): the loss and `dlogits`.

use super::*;

extern "C" fn libm_exp(x: f64) -> f64 {
    libm::exp(x)
}

extern "C" fn libm_log(x: f64) -> f64 {
    libm::log(x)
}

#[test]
fn softmax_xent_rows_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // tests/tensor.rs's (rows, classes, offset) and salts: one class, odd
    // sizes, CIFAR-10 and -100 batches, logits offset by ±10⁴.
    for (s, &case) in SOFTMAXES.iter().enumerate() {
        let (rows, classes, offset) = case;
        let (z, labels) = softmax_inputs(case, s);
        // The reference, row by row and in total.
        let mut d0 = vec![f32::NAN; z.len()];
        let row_loss0: Vec<f64> = z
            .chunks(classes)
            .zip(d0.chunks_mut(classes))
            .zip(&labels)
            .map(|((z, d), &l)| r::softmax_cross_entropy_row(z, l as usize, rows, d))
            .collect();
        let mut d_total = vec![f32::NAN; z.len()];
        let l0 = r::softmax_cross_entropy(classes, &z, &labels, &mut d_total).expect("reference");
        same("reference rows vs total", &d_total, &d0);
        let (rows64, classes64) = (rows as u64, classes as u64);
        let math: [(&str, MathFn, MathFn); 2] = [
            ("libm", Some(libm_exp), Some(libm_log)),
            ("host", None, None),
        ];
        for (name, exp_fn, log_fn) in math {
            for (gx, bx) in launches(rows64) {
                let what = format!(
                    "softmax_xent_rows {rows}×{classes} offset {offset} {name} exp/log \
                     grid {gx}x{bx}"
                );
                let zb = Buf::new(&z);
                let mut d = Buf::<f32>::poison(z.len());
                let mut losses = Buf::<f64>::poison(rows);
                // SAFETY: z and d hold rows·classes floats, labels rows
                // labels below classes, losses rows doubles.
                check(
                    unsafe {
                        (emu.softmax_xent_rows)(
                            gx,
                            bx,
                            exp_fn,
                            log_fn,
                            zb.cptr(),
                            labels.as_ptr(),
                            rows64,
                            classes64,
                            d.ptr(),
                            losses.ptr(),
                        )
                    },
                    &what,
                );
                tally.launch();
                let (d, losses) = (d.get(&what), losses.get(&what));
                // src/tensor.rs: the row losses added on the host in row
                // order from 0.0, over rows.
                let total = losses.iter().fold(0.0f64, |t, l| t + l) / rows as f64;
                if exp_fn.is_some() {
                    tally.exact(same(&format!("{what} (dlogits)"), d, &d0));
                    tally.exact(same(&format!("{what} (row losses)"), losses, &row_loss0));
                    tally.exact(same(&format!("{what} (loss)"), &[total], &[l0]));
                } else {
                    // tests/tensor.rs's bounds (each row's loss within
                    // the bound for one row).
                    tally.bounded(check_dlogits(&what, classes, rows, d, &d0));
                    let mut equal = 0;
                    for (i, (&l, &w)) in losses.iter().zip(&row_loss0).enumerate() {
                        check_loss(&format!("{what} row {i}"), classes, 1, l, w);
                        equal += usize::from(l.to_bits() == w.to_bits());
                    }
                    tally.bounded((rows, equal));
                    check_loss(&what, classes, rows, total, l0);
                    tally.bounded((1, usize::from(total.to_bits() == l0.to_bits())));
                }
            }
        }
    }
    tally.report("softmax_xent_rows");
}
