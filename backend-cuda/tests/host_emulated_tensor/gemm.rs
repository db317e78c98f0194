//! GEMM: `gemm_empty` (the `k = 0` GEMM) and the reduction of `gemm_summed`.

use super::*;

#[test]
fn gemm_empty_matches_reference() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // (m, n, count, stride_c): gemm (count 1, stride 0), and gemm_strided
    // with contiguous outputs, gaps between them, one element each.
    for (s, &(m, n, count, stride_c)) in [
        (3usize, 5usize, 1usize, 0usize),
        (3, 5, 1, 15),
        (2, 3, 4, 6),
        (2, 3, 4, 9),
        (1, 1, 3, 2),
        (17, 33, 5, 600),
    ]
    .iter()
    .enumerate()
    {
        for (alpha, beta) in [(1.0, 0.0), (-1.25, 0.0), (0.1, 0.3), (-0.5, -1.0)] {
            let g = Gemm::new(m, n, 0).scaled(alpha, beta);
            let mn = m * n;
            let len = (count - 1) * stride_c + mn;
            // β = 0: c is not read (NaN stays out of the result).
            let c0 = if beta == 0.0 {
                vec![f32::NAN; len]
            } else {
                data(len, 10 + s as u64)
            };
            let mut want = c0.clone();
            if count == 1 && stride_c == 0 {
                r::gemm(&g, &[], &[], &mut want).expect("reference gemm");
            } else {
                let batch = GemmBatch {
                    count,
                    stride_a: 0,
                    stride_b: 0,
                    stride_c,
                };
                r::gemm_strided(BatchedGemm::new((g, batch), &[], &[], &mut want))
                    .expect("reference strided");
            }
            // src/tensor.rs's gemm_empty arguments.
            let (count64, stride64, mn64) = (count as u64, stride_c as u64, mn as u64);
            let (a32, b32, has_beta) = (alpha as f32, beta as f32, i32::from(beta != 0.0));
            for (gx, bx) in launches(count64 * mn64) {
                let what = format!(
                    "gemm_empty {m}x{n} count {count} stride_c {stride_c} \
                     α {alpha} β {beta} grid {gx}x{bx}"
                );
                let mut c = Buf::new(&c0);
                // SAFETY: c holds (count − 1)·stride_c + m·n floats.
                check(
                    unsafe {
                        (emu.gemm_empty)(
                            gx,
                            bx,
                            c.ptr(),
                            count64,
                            stride64,
                            mn64,
                            a32,
                            b32,
                            has_beta,
                        )
                    },
                    &what,
                );
                tally.launch();
                tally.exact(same(&what, c.get(&what), &want));
            }
        }
    }
    tally.report("gemm_empty");
}

/// `gemm_summed` as src/tensor.rs runs it on the host's products: the
/// chunk loop (products of a chunk by `r::gemm_strided` with α = 1, β = 0,
/// standing in for cuBLAS), `gemm_sum_chunk` per chunk, `gemm_sum_finish`.
/// `chunk` overrides src/tensor.rs's chunk size. Returns c and the `f64`
/// sums.
#[allow(clippy::too_many_arguments)]
fn emulated_gemm_summed(
    emu: &Emu,
    g: &Gemm,
    batch: &GemmBatch,
    a: &[f32],
    b: &[f32],
    c0: &[f32],
    chunk: Option<usize>,
    (gx, bx): (u32, u32),
    what: &str,
    tally: &mut Tally,
) -> (Vec<f32>, Vec<f64>) {
    let (mn, mn64) = (g.m * g.n, (g.m * g.n) as u64);
    // Zero: the sum of no products (k = 0), as alloc_zeros. With products,
    // NaN instead: the first chunk must not read it (`first`), which
    // alloc_zeros would hide.
    let start = if g.k == 0 { 0.0 } else { f64::NAN };
    let mut acc = Buf::new(&vec![start; mn]);
    if g.k > 0 {
        let chunk = chunk.unwrap_or(SUM_CHUNK_ELEMS / mn).clamp(1, batch.count);
        let mut prod = Buf::<f32>::poison(chunk * mn);
        for first in (0..batch.count).step_by(chunk) {
            let len = chunk.min(batch.count - first);
            let products = GemmBatch {
                count: len,
                stride_a: batch.stride_a,
                stride_b: batch.stride_b,
                stride_c: mn,
            };
            let (av, bv) = (&a[first * batch.stride_a..], &b[first * batch.stride_b..]);
            let req = BatchedGemm::new((g.scaled(1.0, 0.0), products), av, bv, prod.data_mut());
            r::gemm_strided(req).expect("products");
            let (len, is_first) = (len as u64, i32::from(first == 0));
            // SAFETY: prod holds chunk·m·n ≥ len·m·n floats, acc m·n doubles.
            check(
                unsafe {
                    (emu.gemm_sum_chunk)(gx, bx, prod.cptr(), len, mn64, is_first, acc.ptr())
                },
                what,
            );
            tally.launch();
        }
        prod.get(what);
    }
    let has_beta = i32::from(g.beta != 0.0);
    let mut c = Buf::new(c0);
    // SAFETY: acc holds m·n doubles, c at least m·n floats.
    check(
        unsafe {
            (emu.gemm_sum_finish)(gx, bx, acc.cptr(), mn64, g.alpha, g.beta, has_beta, c.ptr())
        },
        what,
    );
    tally.launch();
    (c.get(what).to_vec(), acc.get(what).to_vec())
}

#[test]
fn gemm_summed_reduction_is_an_f64_sum_in_order() {
    let Some(emu) = emu_or_skip() else { return };
    let mut tally = Tally::default();
    // (m, n, k, count, trans_a, trans_b, stride_a, stride_b): one product,
    // a shared a (stride 0), gaps, the weight-gradient shape of
    // tests/tensor.rs, and k = 0 (no products).
    for (s, &(m, n, k, count, ta, tb, sa, sb)) in [
        (1usize, 1usize, 1usize, 1usize, false, false, 1usize, 1usize),
        (3, 5, 7, 4, false, false, 21, 35),
        (3, 5, 7, 6, true, true, 0, 40),
        (2, 3, 4, 9, true, false, 8, 12),
        (16, 75, 64, 64, false, true, 16 * 64, 75 * 64),
        (4, 6, 0, 5, false, false, 0, 0),
    ]
    .iter()
    .enumerate()
    {
        let batch = GemmBatch {
            count,
            stride_a: sa,
            stride_b: sb,
            stride_c: 0,
        };
        let salt = 20 + 10 * s as u64;
        // Operands over many magnitudes, so that the order of a sum shows.
        let wide = |len: usize, salt: u64| -> Vec<f32> {
            data(len, salt)
                .iter()
                .enumerate()
                .map(|(i, v)| v * [1.0, 1e-3, 1e3, 0.5][i % 4])
                .collect()
        };
        let a = wide((count - 1) * sa + m * k, salt);
        let b = wide((count - 1) * sb + k * n, salt + 1);
        let mn = m * n;
        // Every product, in order.
        let mut prods = vec![0.0f32; count * mn];
        if k > 0 {
            let all = GemmBatch {
                stride_c: mn,
                ..batch
            };
            let g1 = Gemm::new(m, n, k).transposed(ta, tb);
            r::gemm_strided(BatchedGemm::new((g1, all), &a, &b, &mut prods)).expect("products");
        }
        // The model's f64 sums: per element, the products in order from 0.0.
        let sums: Vec<f64> = (0..mn)
            .map(|e| (0..count).fold(0.0f64, |acc, i| acc + f64::from(prods[i * mn + e])))
            .collect();
        // Per element, Σ |a_ip · b_pj| over every product (the GEMM bound).
        let mags: Vec<f64> = (0..mn)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                (0..count)
                    .flat_map(|q| (0..k).map(move |p| (q, p)))
                    .map(|(q, p)| {
                        let x = if ta {
                            a[q * sa + p * m + i]
                        } else {
                            a[q * sa + i * k + p]
                        };
                        let y = if tb {
                            b[q * sb + j * k + p]
                        } else {
                            b[q * sb + p * n + j]
                        };
                        (f64::from(x) * f64::from(y)).abs()
                    })
                    .sum()
            })
            .collect();
        // α and β exact in f32, so that k = 0 is the reference's bits.
        for (alpha, beta) in [(1.0, 1.0), (-0.5, 0.0), (0.75, -2.0)] {
            let g = Gemm::new(m, n, k).transposed(ta, tb).scaled(alpha, beta);
            let c0 = if beta == 0.0 {
                vec![f32::NAN; mn]
            } else {
                data(mn, salt + 2)
            };
            // The model: α and β in f64 on the sums, one rounding.
            let want: Vec<f32> = (0..mn)
                .map(|e| {
                    let mut v = alpha * sums[e];
                    if beta != 0.0 {
                        v += beta * f64::from(c0[e]);
                    }
                    v as f32
                })
                .collect();
            let mut reference = c0.clone();
            r::gemm_summed(BatchedGemm::new((g, batch), &a, &b, &mut reference))
                .expect("reference");
            let mut first: Option<Vec<f32>> = None;
            for chunk in [None, Some(1), Some(3)] {
                for l in launches(mn as u64) {
                    let what = format!(
                        "gemm_summed {m}x{n}x{k} count {count} α {alpha} β {beta} \
                         chunk {chunk:?} grid {}x{}",
                        l.0, l.1
                    );
                    let (c, acc) = emulated_gemm_summed(
                        emu, &g, &batch, &a, &b, &c0, chunk, l, &what, &mut tally,
                    );
                    tally.exact(same(&format!("{what} (f64 sums)"), &acc, &sums));
                    tally.exact(same(&what, &c, &want));
                    if let Some(f) = &first {
                        same(&format!("{what} (again)"), &c, f);
                    } else {
                        first = Some(c.clone());
                    }
                    if k == 0 {
                        tally.exact(same(&format!("{what} (reference)"), &c, &reference));
                    } else {
                        // tests/tensor.rs's bound: the GEMM bound with k
                        // replaced by count · k.
                        tally.bounded(within(
                            &format!("{what} (reference)"),
                            &c,
                            &reference,
                            |e| {
                                let old = if beta == 0.0 {
                                    0.0
                                } else {
                                    f64::from(c0[e]).abs()
                                };
                                gemm_summed_bound(count, k, alpha, beta, mags[e], old)
                            },
                        ));
                    }
                }
            }
        }
    }
    tally.report("gemm_sum_chunk, gemm_sum_finish");
}
