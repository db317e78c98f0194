//! The tensor operations of [`smoothout::tensor`] on [`Cpu`].
//!
//! GEMM goes through `matrixmultiply` (the crate `ndarray` uses; it measured
//! 1.4–1.7 times faster than the `gemm` crate on this project's shapes, see
//! `benches/gemm.rs`), with `C` split into fixed blocks of [`GEMM_ROWS`]
//! rows, one single-threaded call per block. Everything else calls the
//! [`smoothout::tensor_reference`] kernels on fixed ranges — images, planes,
//! channels, rows, or chunks of elements — so the bits do not depend on the
//! number of threads, and all but GEMM equal the reference's.

use core::any::TypeId;

use ndarray::ArrayD;
use rayon::prelude::*;
use smoothout::tensor::check_len;
use smoothout::tensor_reference as r;
use smoothout::{
    BatchNorm, BatchNormOps, Conv2d, ConvOps, Gemm, LossOps, MapOps, MatmulOps, Pool2d, PoolOps,
    Real, Result,
};

use crate::{slice, slice_mut, Cpu};

/// Rows of `C` per parallel GEMM task. Fixed, so the calls (and the bits)
/// do not depend on the thread count.
pub const GEMM_ROWS: usize = 64;

/// Row and column strides of a stored matrix read as `op(x)`.
fn strides(trans: bool, rows: usize, cols: usize) -> (isize, isize) {
    // op(x) is rows × cols; x is stored cols × rows when transposed.
    if trans {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

/// One block of rows `first..first + rows` of `C`, through
/// `matrixmultiply` for `f32`/`f64` (the reference loop for any other
/// `Real`).
fn gemm_block<T: Real>(g: &Gemm, first: usize, a: &[T], b: &[T], c: &mut [T]) {
    let rows = c.len() / g.n;
    let (rsa, csa) = strides(g.trans_a, g.m, g.k);
    let (rsb, csb) = strides(g.trans_b, g.k, g.n);
    let a_off = if g.trans_a { first } else { first * g.k };
    let (pa, pb, pc) = (a[a_off..].as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let n = g.n as isize;
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32, so the pointers are to f32. `op(a)` rows
        // first..first + rows, `op(b)` and this block of `C` lie inside
        // their slices (lengths checked by `Gemm::validate`, block sizes by
        // the caller's split).
        unsafe {
            matrixmultiply::sgemm(
                rows,
                g.k,
                g.n,
                g.alpha as f32,
                pa.cast(),
                rsa,
                csa,
                pb.cast(),
                rsb,
                csb,
                g.beta as f32,
                pc.cast(),
                n,
                1,
            );
        }
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        // SAFETY: as above, with T = f64.
        unsafe {
            matrixmultiply::dgemm(
                rows,
                g.k,
                g.n,
                g.alpha,
                pa.cast(),
                rsa,
                csa,
                pb.cast(),
                rsb,
                csb,
                g.beta,
                pc.cast(),
                n,
                1,
            );
        }
    } else {
        // Not reachable with the crate's `Real` types; kept correct anyway.
        for i in 0..rows {
            for j in 0..g.n {
                let mut acc = T::zero();
                for p in 0..g.k {
                    let x = a[(first + i) * rsa as usize + p * csa as usize];
                    let y = b[p * rsb as usize + j * csb as usize];
                    acc = acc + x * y;
                }
                let o = &mut c[i * g.n + j];
                *o = if g.beta == 0.0 {
                    T::from_f64(g.alpha) * acc
                } else {
                    T::from_f64(g.alpha) * acc + T::from_f64(g.beta) * *o
                };
            }
        }
    }
}

impl<T: Real> MatmulOps for Cpu<T> {
    fn gemm(&self, g: &Gemm, a: &ArrayD<T>, b: &ArrayD<T>, c: &mut ArrayD<T>) -> Result<()> {
        let (a, b, c) = (slice(a)?, slice(b)?, slice_mut(c)?);
        g.validate(a.len(), b.len(), c.len())?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        if g.k == 0 {
            // An empty sum: the reference's `α · 0 (+ β · c)`, without
            // offsetting into an empty `a`.
            let (alpha, beta) = (T::from_f64(g.alpha), T::from_f64(g.beta));
            for c in c.iter_mut() {
                *c = if g.beta == 0.0 {
                    alpha * T::zero()
                } else {
                    alpha * T::zero() + beta * *c
                };
            }
            return Ok(());
        }
        self.pool.install(|| {
            c.par_chunks_mut(GEMM_ROWS * g.n)
                .enumerate()
                .for_each(|(i, c)| gemm_block(g, i * GEMM_ROWS, a, b, c));
        });
        Ok(())
    }
}

impl<T: Real> ConvOps for Cpu<T> {
    fn im2col(&self, conv: &Conv2d, x: &ArrayD<T>, col: &mut ArrayD<T>) -> Result<()> {
        let (x, col) = (slice(x)?, slice_mut(col)?);
        conv.validate_buffers(x.len(), col.len())?;
        let per = conv.col_rows() * conv.col_cols();
        self.pool.install(|| {
            col.par_chunks_mut(per)
                .zip(x.par_chunks(conv.image_len()))
                .for_each(|(col, x)| r::im2col_image(conv, x, col));
        });
        Ok(())
    }

    fn col2im(&self, conv: &Conv2d, col: &ArrayD<T>, x: &mut ArrayD<T>) -> Result<()> {
        let (col, x) = (slice(col)?, slice_mut(x)?);
        conv.validate_buffers(x.len(), col.len())?;
        let per = conv.col_rows() * conv.col_cols();
        self.pool.install(|| {
            x.par_chunks_mut(conv.image_len())
                .zip(col.par_chunks(per))
                .for_each(|(x, col)| r::col2im_image(conv, col, x));
        });
        Ok(())
    }
}

impl<T: Real> PoolOps for Cpu<T> {
    fn pool_forward(&self, p: &Pool2d, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        let (x, y) = (slice(x)?, slice_mut(y)?);
        p.validate_buffers(x.len(), y.len())?;
        let (plane, out) = (p.height * p.width, p.out_h() * p.out_w());
        self.pool.install(|| {
            y.par_chunks_mut(out)
                .zip(x.par_chunks(plane))
                .for_each(|(y, x)| r::pool_forward_plane(p, x, y));
        });
        Ok(())
    }

    fn pool_backward(
        &self,
        p: &Pool2d,
        x: &ArrayD<T>,
        dy: &ArrayD<T>,
        dx: &mut ArrayD<T>,
    ) -> Result<()> {
        let (x, dy, dx) = (slice(x)?, slice(dy)?, slice_mut(dx)?);
        p.validate_buffers(x.len(), dy.len())?;
        check_len("pool input gradient", x.len(), dx.len())?;
        let (plane, out) = (p.height * p.width, p.out_h() * p.out_w());
        self.pool.install(|| {
            dx.par_chunks_mut(plane)
                .zip(x.par_chunks(plane))
                .zip(dy.par_chunks(out))
                .for_each(|((dx, x), dy)| r::pool_backward_plane(p, x, dy, dx));
        });
        Ok(())
    }
}

impl<T: Real> BatchNormOps for Cpu<T> {
    fn batch_norm_stats(
        &self,
        bn: &BatchNorm,
        x: &ArrayD<T>,
        mean: &mut ArrayD<T>,
        var: &mut ArrayD<T>,
    ) -> Result<()> {
        let (x, mean, var) = (slice(x)?, slice_mut(mean)?, slice_mut(var)?);
        bn.validate_buffers(&[x.len()], &[mean.len(), var.len()])?;
        self.pool.install(|| {
            mean.par_iter_mut()
                .zip(var.par_iter_mut())
                .enumerate()
                .for_each(|(c, (m, v))| {
                    let (mu, s2) = r::batch_norm_stats_channel(bn, x, c);
                    *m = T::from_f64(mu);
                    *v = T::from_f64(s2);
                });
        });
        Ok(())
    }

    fn batch_norm_forward(
        &self,
        bn: &BatchNorm,
        x: &ArrayD<T>,
        gamma: &ArrayD<T>,
        beta: &ArrayD<T>,
        mean: &ArrayD<T>,
        var: &ArrayD<T>,
        y: &mut ArrayD<T>,
    ) -> Result<()> {
        let (x, y) = (slice(x)?, slice_mut(y)?);
        let (gamma, beta, mean, var) = (slice(gamma)?, slice(beta)?, slice(mean)?, slice(var)?);
        bn.validate_buffers(
            &[x.len(), y.len()],
            &[gamma.len(), beta.len(), mean.len(), var.len()],
        )?;
        let per = bn.channels * bn.spatial;
        self.pool.install(|| {
            y.par_chunks_mut(per)
                .zip(x.par_chunks(per))
                .for_each(|(y, x)| r::batch_norm_forward_sample(bn, x, gamma, beta, mean, var, y));
        });
        Ok(())
    }

    fn batch_norm_backward(
        &self,
        bn: &BatchNorm,
        x: &ArrayD<T>,
        dy: &ArrayD<T>,
        gamma: &ArrayD<T>,
        mean: &ArrayD<T>,
        var: &ArrayD<T>,
        dx: &mut ArrayD<T>,
        dgamma: &mut ArrayD<T>,
        dbeta: &mut ArrayD<T>,
    ) -> Result<()> {
        let (x, dy, dx) = (slice(x)?, slice(dy)?, slice_mut(dx)?);
        let (gamma, mean, var) = (slice(gamma)?, slice(mean)?, slice(var)?);
        let (dgamma, dbeta) = (slice_mut(dgamma)?, slice_mut(dbeta)?);
        bn.validate_buffers(
            &[x.len(), dy.len(), dx.len()],
            &[
                gamma.len(),
                mean.len(),
                var.len(),
                dgamma.len(),
                dbeta.len(),
            ],
        )?;
        let per = bn.channels * bn.spatial;
        self.pool.install(|| {
            let sums: Vec<(f64, f64)> = (0..bn.channels)
                .into_par_iter()
                .map(|c| r::batch_norm_grads_channel(bn, x, dy, mean[c], var[c], c))
                .collect();
            let (dg, db): (Vec<f64>, Vec<f64>) = sums.into_iter().unzip();
            for c in 0..bn.channels {
                dgamma[c] = T::from_f64(dg[c]);
                dbeta[c] = T::from_f64(db[c]);
            }
            dx.par_chunks_mut(per)
                .zip(x.par_chunks(per))
                .zip(dy.par_chunks(per))
                .for_each(|((dx, x), dy)| {
                    r::batch_norm_backward_sample(bn, x, dy, gamma, mean, var, &dg, &db, dx)
                });
        });
        Ok(())
    }
}

impl<T: Real> LossOps for Cpu<T> {
    fn softmax_cross_entropy(
        &self,
        classes: usize,
        logits: &ArrayD<T>,
        labels: &[u32],
        dlogits: &mut ArrayD<T>,
    ) -> Result<f64> {
        let (z, d) = (slice(logits)?, slice_mut(dlogits)?);
        r::check_softmax_cross_entropy(classes, z.len(), labels, d.len())?;
        let rows = labels.len();
        let mut losses = vec![0.0f64; rows];
        self.pool.install(|| {
            losses
                .par_iter_mut()
                .zip(d.par_chunks_mut(classes))
                .zip(z.par_chunks(classes))
                .zip(labels.par_iter())
                .for_each(|(((loss, d), z), &l)| {
                    *loss = r::softmax_cross_entropy_row(z, l as usize, rows, d);
                });
        });
        // Summed in row order from 0.0, as the reference does.
        let mut total = 0.0;
        for l in losses {
            total += l;
        }
        Ok(total / rows as f64)
    }
}

impl<T: Real> Cpu<T> {
    /// Runs `f` over `y` in chunks of `self.chunk`, zipped with `x`'s.
    fn zip_chunks(&self, x: &[T], y: &mut [T], f: impl Fn(&[T], &mut [T]) + Sync) {
        let n = self.chunk;
        self.pool.install(|| {
            y.par_chunks_mut(n)
                .zip(x.par_chunks(n))
                .for_each(|(y, x)| f(x, y));
        });
    }
}

impl<T: Real> MapOps for Cpu<T> {
    fn relu(&self, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        let (x, y) = (slice(x)?, slice_mut(y)?);
        check_len("relu output", x.len(), y.len())?;
        self.zip_chunks(x, y, r::relu);
        Ok(())
    }

    fn relu_backward(&self, x: &ArrayD<T>, dy: &ArrayD<T>, dx: &mut ArrayD<T>) -> Result<()> {
        let (x, dy, dx) = (slice(x)?, slice(dy)?, slice_mut(dx)?);
        check_len("relu gradient", x.len(), dy.len())?;
        check_len("relu input gradient", x.len(), dx.len())?;
        let n = self.chunk;
        self.pool.install(|| {
            dx.par_chunks_mut(n)
                .zip(x.par_chunks(n))
                .zip(dy.par_chunks(n))
                .for_each(|((dx, x), dy)| r::relu_backward(x, dy, dx));
        });
        Ok(())
    }

    fn scale(&self, alpha: T, x: &mut ArrayD<T>) -> Result<()> {
        let x = slice_mut(x)?;
        let n = self.chunk;
        self.pool
            .install(|| x.par_chunks_mut(n).for_each(|x| r::scale(alpha, x)));
        Ok(())
    }

    fn add(&self, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        let (x, y) = (slice(x)?, slice_mut(y)?);
        check_len("add operands", y.len(), x.len())?;
        self.zip_chunks(x, y, r::add);
        Ok(())
    }

    fn mul(&self, x: &ArrayD<T>, y: &mut ArrayD<T>) -> Result<()> {
        let (x, y) = (slice(x)?, slice_mut(y)?);
        check_len("mul operands", y.len(), x.len())?;
        self.zip_chunks(x, y, r::mul);
        Ok(())
    }

    fn fill(&self, value: T, x: &mut ArrayD<T>) -> Result<()> {
        let x = slice_mut(x)?;
        let n = self.chunk;
        self.pool
            .install(|| x.par_chunks_mut(n).for_each(|x| x.fill(value)));
        Ok(())
    }

    fn add_bias(&self, bias: &ArrayD<T>, inner: usize, x: &mut ArrayD<T>) -> Result<()> {
        let (bias, x) = (slice(bias)?, slice_mut(x)?);
        r::check_bias(bias.len(), inner, x.len())?;
        self.pool.install(|| {
            x.par_chunks_mut(bias.len() * inner)
                .for_each(|x| r::add_bias_block(bias, inner, x));
        });
        Ok(())
    }

    fn bias_grad(&self, dy: &ArrayD<T>, inner: usize, db: &mut ArrayD<T>) -> Result<()> {
        let (dy, db) = (slice(dy)?, slice_mut(db)?);
        r::check_bias(db.len(), inner, dy.len())?;
        let channels = db.len();
        self.pool.install(|| {
            db.par_iter_mut().enumerate().for_each(|(c, d)| {
                *d = T::from_f64(r::bias_grad_channel(dy, channels, inner, c));
            });
        });
        Ok(())
    }
}
