//! A tiny fully connected ReLU network on plain slices: the model that the
//! invariance, dropout and backend checks run SmoothOut on.
//!
//! ```text
//! h_0 = x
//! z_l = W_l h_{l−1} + b_l          l = 1 … L
//! h_l = relu(z_l)                  hidden layers (l < L)
//! f   = z_L                        linear output
//! C(w) = (1/n) Σ_i ½ ‖f(x_i; w) − y_i‖²
//! ```
//!
//! The parameters are `2L` buffers in the order `W_1, b_1, …, W_L, b_L`.
//! `W_l` has shape `[out, in]`, row-major: row `j` holds unit `j`'s incoming
//! weights, which is the dim-0 row AdaSmoothOut scales its noise by
//! ([`Mlp::specs`] says so with [`ParamSpec::weight`]).
//!
//! Arithmetic is in `f64` whatever the storage type `T`, in a fixed order:
//! each pre-activation starts from `b_j` and adds the products `W_jk h_k` for
//! `k = 0, 1, …`; the loss adds the outputs' squared residuals, then the
//! samples, then divides by `n`. The checks' rounding bounds rest on this
//! order (see [`crate::checks::invariance`]).

use smoothout::reference;
use smoothout::{Noise, NoiseKey, ParamSpec, Real};

/// Layer sizes `[in, hidden…, out]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mlp {
    sizes: Vec<usize>,
}

/// A data set: `n` inputs and targets, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    /// Number of samples.
    pub n: usize,
    /// Inputs, `n × in`.
    pub x: Vec<f64>,
    /// Targets, `n × out`.
    pub y: Vec<f64>,
}

/// The elements of a slice of any element type, widened to `f64`.
fn widen<T: Real>(x: &[T]) -> impl Iterator<Item = f64> + '_ {
    x.iter().map(|v| Real::to_f64(*v))
}

impl Mlp {
    /// A network with the given layer sizes.
    ///
    /// # Panics
    ///
    /// With fewer than two sizes or a size of zero.
    #[must_use]
    pub fn new(sizes: &[usize]) -> Self {
        assert!(
            sizes.len() >= 2 && sizes.iter().all(|&s| s > 0),
            "an MLP needs at least an input and an output size, all > 0: {sizes:?}"
        );
        Mlp {
            sizes: sizes.to_vec(),
        }
    }

    /// The layer sizes `[in, hidden…, out]`.
    #[must_use]
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Number of layers `L` (weight matrices).
    #[must_use]
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Input width.
    #[must_use]
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// Output width.
    #[must_use]
    pub fn outputs(&self) -> usize {
        self.sizes[self.layers()]
    }

    /// The specs of the `2L` buffers: `l{k}.weight` of shape `[out, in]` and
    /// `l{k}.bias` of `out` elements, `k = 1 … L`.
    #[must_use]
    pub fn specs(&self) -> Vec<ParamSpec> {
        let mut v = Vec::with_capacity(2 * self.layers());
        for (k, s) in self.sizes.windows(2).enumerate() {
            v.push(ParamSpec::weight(
                format!("l{}.weight", k + 1),
                [s[1], s[0]],
            ));
            v.push(ParamSpec::bias(format!("l{}.bias", k + 1), s[1]));
        }
        v
    }

    /// The length of each buffer, in order.
    #[must_use]
    pub fn lens(&self) -> Vec<usize> {
        self.sizes
            .windows(2)
            .flat_map(|s| [s[0] * s[1], s[1]])
            .collect()
    }

    /// Total number of parameters.
    #[must_use]
    pub fn param_count(&self) -> usize {
        self.lens().iter().sum()
    }

    /// The buffers of a flat parameter vector laid out `W_1, b_1, …`.
    ///
    /// # Panics
    ///
    /// If `flat.len()` is not [`Mlp::param_count`].
    #[must_use]
    pub fn split<'a, T>(&self, flat: &'a [T]) -> Vec<&'a [T]> {
        assert_eq!(flat.len(), self.param_count(), "flat parameter length");
        let mut out = Vec::with_capacity(2 * self.layers());
        let mut rest = flat;
        for n in self.lens() {
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }

    /// Deterministic parameters from the library's noise: weights
    /// `N(0, 2/in)` (He), biases `N(0, bias_std²)`.
    #[must_use]
    pub fn init(&self, seed: u64, bias_std: f64) -> Vec<Vec<f64>> {
        let root = NoiseKey::from_seed(seed);
        self.specs()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let std = if i % 2 == 0 {
                    (2.0 / s.cols() as f64).sqrt()
                } else {
                    bias_std
                };
                let mut v = vec![0.0; s.len()];
                reference::fill_noise(root.fold_in(i as u64), &Noise::Gaussian { std }, 0, &mut v)
                    .expect("a finite std is valid noise");
                v
            })
            .collect()
    }

    /// `n` samples with inputs and targets `N(0, 1)` from the library's noise.
    #[must_use]
    pub fn data(&self, n: usize, seed: u64) -> Data {
        let root = NoiseKey::from_seed(seed).fold_in(0xDA7A);
        let mut x = vec![0.0; n * self.inputs()];
        let mut y = vec![0.0; n * self.outputs()];
        let g = Noise::Gaussian { std: 1.0 };
        reference::fill_noise(root.fold_in(0), &g, 0, &mut x).expect("valid noise");
        reference::fill_noise(root.fold_in(1), &g, 0, &mut y).expect("valid noise");
        Data { n, x, y }
    }

    fn check<T>(&self, params: &[&[T]]) {
        let lens = self.lens();
        assert_eq!(params.len(), lens.len(), "number of parameter buffers");
        for (i, (p, n)) in params.iter().zip(&lens).enumerate() {
            assert_eq!(p.len(), *n, "length of parameter buffer {i}");
        }
    }

    /// Every layer's pre-activations `z_1 … z_L` for one input, into `zs`
    /// (hidden activations are `relu(z)`).
    fn forward_into<T: Real>(&self, params: &[&[T]], x: &[f64], zs: &mut [Vec<f64>]) {
        let mut h: Vec<f64> = x.to_vec();
        for l in 0..self.layers() {
            let (w, b) = (params[2 * l], params[2 * l + 1]);
            let (nin, nout) = (self.sizes[l], self.sizes[l + 1]);
            let z = &mut zs[l];
            z.clear();
            for j in 0..nout {
                let mut acc = Real::to_f64(b[j]);
                for (wk, hk) in widen(&w[j * nin..(j + 1) * nin]).zip(&h) {
                    acc += wk * hk;
                }
                z.push(acc);
            }
            h.clear();
            h.extend(z.iter().map(|&v| v.max(0.0)));
        }
    }

    fn scratch(&self) -> Vec<Vec<f64>> {
        self.sizes[1..]
            .iter()
            .map(|&s| Vec::with_capacity(s))
            .collect()
    }

    /// The outputs `f(x_i)` for every sample, `n × out`.
    ///
    /// # Panics
    ///
    /// If the buffers do not match [`Mlp::lens`].
    #[must_use]
    pub fn outputs_of<T: Real>(&self, params: &[&[T]], data: &Data) -> Vec<f64> {
        self.check(params);
        let mut zs = self.scratch();
        let mut out = Vec::with_capacity(data.n * self.outputs());
        for i in 0..data.n {
            let x = &data.x[i * self.inputs()..(i + 1) * self.inputs()];
            self.forward_into(params, x, &mut zs);
            out.extend_from_slice(&zs[self.layers() - 1]);
        }
        out
    }

    /// The loss `C(w)` from the outputs [`Mlp::outputs_of`] gives.
    #[must_use]
    pub fn loss_from_outputs(&self, outputs: &[f64], data: &Data) -> f64 {
        let mut sum = 0.0;
        for (f, y) in outputs
            .chunks_exact(self.outputs())
            .zip(data.y.chunks_exact(self.outputs()))
        {
            let mut s = 0.0;
            for (f, y) in f.iter().zip(y) {
                let r = f - y;
                s += 0.5 * r * r;
            }
            sum += s;
        }
        sum / data.n as f64
    }

    /// The loss `C(w) = (1/n) Σ ½ ‖f(x_i) − y_i‖²`.
    ///
    /// # Panics
    ///
    /// If the buffers do not match [`Mlp::lens`].
    #[must_use]
    pub fn loss<T: Real>(&self, params: &[&[T]], data: &Data) -> f64 {
        self.loss_from_outputs(&self.outputs_of(params, data), data)
    }

    /// The magnitudes of the absolute network: `A_0 = |x|`,
    /// `A_l = |W_l| A_{l−1} + |b_l|` (no activation), at the output layer,
    /// `n × out`. `params` hold the magnitudes to use (they are taken in
    /// absolute value). `|z_l| ≤ A_l` and `|h_l| ≤ A_l` for the network
    /// with those weights or any with smaller magnitudes.
    ///
    /// # Panics
    ///
    /// If the buffers do not match [`Mlp::lens`].
    #[must_use]
    pub fn magnitudes(&self, params: &[&[f64]], data: &Data) -> Vec<f64> {
        self.check(params);
        let mut out = Vec::with_capacity(data.n * self.outputs());
        for i in 0..data.n {
            let mut a: Vec<f64> = data.x[i * self.inputs()..(i + 1) * self.inputs()]
                .iter()
                .map(|v| v.abs())
                .collect();
            for l in 0..self.layers() {
                let (w, b) = (params[2 * l], params[2 * l + 1]);
                let nin = self.sizes[l];
                a = (0..self.sizes[l + 1])
                    .map(|j| {
                        let row = &w[j * nin..(j + 1) * nin];
                        b[j].abs() + row.iter().zip(&a).map(|(w, a)| w.abs() * a).sum::<f64>()
                    })
                    .collect();
            }
            out.extend_from_slice(&a);
        }
        out
    }

    /// `C(w)` and its gradient by back-propagation, written into `grads`
    /// (overwritten, rounded to `T` once; same layout as `params`).
    ///
    /// # Panics
    ///
    /// If the buffers do not match [`Mlp::lens`].
    pub fn loss_and_grad<T: Real>(
        &self,
        params: &[&[T]],
        data: &Data,
        grads: &mut [&mut [T]],
    ) -> f64 {
        self.check(params);
        assert_eq!(grads.len(), params.len(), "number of gradient buffers");
        let mut acc: Vec<Vec<f64>> = self.lens().iter().map(|&n| vec![0.0; n]).collect();
        let mut zs = self.scratch();
        let inv_n = 1.0 / data.n as f64;
        let (nx, ny, big_l) = (self.inputs(), self.outputs(), self.layers());
        let mut sum = 0.0;
        for i in 0..data.n {
            let x = &data.x[i * nx..(i + 1) * nx];
            let y = &data.y[i * ny..(i + 1) * ny];
            self.forward_into(params, x, &mut zs);
            let mut s = 0.0;
            let mut delta: Vec<f64> = zs[big_l - 1]
                .iter()
                .zip(y)
                .map(|(f, y)| {
                    let r = f - y;
                    s += 0.5 * r * r;
                    r * inv_n
                })
                .collect();
            sum += s;
            for l in (0..big_l).rev() {
                let nin = self.sizes[l];
                let h_prev: Vec<f64> = if l == 0 {
                    x.to_vec()
                } else {
                    zs[l - 1].iter().map(|&v| v.max(0.0)).collect()
                };
                let w = params[2 * l];
                let mut back = vec![0.0; nin];
                for (j, &d) in delta.iter().enumerate() {
                    acc[2 * l + 1][j] += d;
                    let gw = &mut acc[2 * l][j * nin..(j + 1) * nin];
                    for (k, (g, h)) in gw.iter_mut().zip(&h_prev).enumerate() {
                        *g += d * h;
                        back[k] += Real::to_f64(w[j * nin + k]) * d;
                    }
                }
                if l > 0 {
                    for (b, z) in back.iter_mut().zip(&zs[l - 1]) {
                        if *z <= 0.0 {
                            *b = 0.0;
                        }
                    }
                }
                delta = back;
            }
        }
        for (g, a) in grads.iter_mut().zip(&acc) {
            assert_eq!(g.len(), a.len(), "gradient buffer length");
            for (g, a) in g.iter_mut().zip(a) {
                *g = T::from_f64(*a);
            }
        }
        sum / data.n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Back-propagation agrees with central differences (relative 1e-6:
    /// the difference quotient's truncation error at step 1e-6 on a
    /// piecewise-quadratic loss away from kinks, plus rounding ~1e-10).
    #[test]
    fn gradient_matches_finite_differences() {
        let mlp = Mlp::new(&[3, 4, 2]);
        let params = mlp.init(1, 0.3);
        let data = mlp.data(5, 2);
        let views: Vec<&[f64]> = params.iter().map(Vec::as_slice).collect();
        let mut g: Vec<Vec<f64>> = mlp.lens().iter().map(|&n| vec![0.0; n]).collect();
        let mut gv: Vec<&mut [f64]> = g.iter_mut().map(Vec::as_mut_slice).collect();
        let c = mlp.loss_and_grad(&views, &data, &mut gv);
        assert_eq!(c.to_bits(), mlp.loss(&views, &data).to_bits());
        let h = 1e-6;
        for b in 0..params.len() {
            for e in 0..params[b].len() {
                let mut p = params.clone();
                p[b][e] += h;
                let up = mlp.loss(&p.iter().map(Vec::as_slice).collect::<Vec<_>>(), &data);
                p[b][e] -= 2.0 * h;
                let dn = mlp.loss(&p.iter().map(Vec::as_slice).collect::<Vec<_>>(), &data);
                let fd = (up - dn) / (2.0 * h);
                assert!(
                    (fd - g[b][e]).abs() <= 1e-6 * (1.0 + fd.abs()),
                    "buffer {b} element {e}: {fd} vs {}",
                    g[b][e]
                );
            }
        }
    }
}
