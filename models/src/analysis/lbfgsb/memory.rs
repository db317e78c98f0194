//! The limited memory: the last correction pairs `(s, y)` and the small
//! matrices of the compact form `B = θI − W M Wᵀ`, `W = [Y θS]`.

use std::collections::VecDeque;

use super::dense::{dot, invert};

/// The correction pairs and the small matrices of the compact
/// representation `B = θI − W M Wᵀ`, `W = [Y θS]`.
pub(super) struct Memory {
    pub(super) capacity: usize,
    /// Steps, oldest first.
    pub(super) s: VecDeque<Vec<f64>>,
    /// Gradient changes, oldest first.
    pub(super) y: VecDeque<Vec<f64>>,
    /// `ss[i][j] = sᵢ·sⱼ`.
    pub(super) ss: Vec<Vec<f64>>,
    /// `sy[i][j] = sᵢ·yⱼ`.
    pub(super) sy: Vec<Vec<f64>>,
    /// `yy[i][j] = yᵢ·yⱼ`.
    pub(super) yy: Vec<Vec<f64>>,
    pub(super) theta: f64,
    /// `M`, `2k × 2k` row-major for `k` pairs.
    pub(super) m: Vec<f64>,
}

impl Memory {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            s: VecDeque::with_capacity(capacity),
            y: VecDeque::with_capacity(capacity),
            ss: Vec::new(),
            sy: Vec::new(),
            yy: Vec::new(),
            theta: 1.0,
            m: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.s.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.s.clear();
        self.y.clear();
        self.ss.clear();
        self.sy.clear();
        self.yy.clear();
        self.theta = 1.0;
        self.m.clear();
    }

    /// Adds a pair (dropping the oldest when full) and rebuilds `M`.
    /// `false` if `M` could not be formed.
    pub(super) fn push(&mut self, s_new: &[f64], y_new: &[f64]) -> bool {
        let (mut s_buf, mut y_buf) = if self.len() == self.capacity {
            for gram in [&mut self.ss, &mut self.sy, &mut self.yy] {
                gram.remove(0);
                for row in gram.iter_mut() {
                    row.remove(0);
                }
            }
            (
                self.s.pop_front().unwrap_or_default(),
                self.y.pop_front().unwrap_or_default(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        s_buf.clear();
        s_buf.extend_from_slice(s_new);
        y_buf.clear();
        y_buf.extend_from_slice(y_new);

        let k = self.len();
        let mut ss_row = Vec::with_capacity(k + 1);
        let mut sy_row = Vec::with_capacity(k + 1);
        let mut yy_row = Vec::with_capacity(k + 1);
        for i in 0..k {
            let ss = dot(&self.s[i], &s_buf);
            let yy = dot(&self.y[i], &y_buf);
            self.ss[i].push(ss);
            self.yy[i].push(yy);
            self.sy[i].push(dot(&self.s[i], &y_buf));
            ss_row.push(ss);
            yy_row.push(yy);
            sy_row.push(dot(&s_buf, &self.y[i]));
        }
        let sy_new = dot(&s_buf, &y_buf);
        let yy_new = dot(&y_buf, &y_buf);
        ss_row.push(dot(&s_buf, &s_buf));
        sy_row.push(sy_new);
        yy_row.push(yy_new);
        self.ss.push(ss_row);
        self.sy.push(sy_row);
        self.yy.push(yy_row);
        self.s.push_back(s_buf);
        self.y.push_back(y_buf);
        self.theta = yy_new / sy_new;
        self.form_m()
    }

    /// The `2k × 2k` matrix `K = M⁻¹ = [[−D, Lᵀ], [L, θSᵀS]]`.
    pub(super) fn middle(&self) -> Vec<f64> {
        let k = self.len();
        let dim = 2 * k;
        let mut km = vec![0.0; dim * dim];
        for i in 0..k {
            km[i * dim + i] = -self.sy[i][i];
            for j in 0..k {
                if i > j {
                    // L[i][j] = sᵢ·yⱼ below the diagonal, Lᵀ above it.
                    km[(k + i) * dim + j] = self.sy[i][j];
                    km[j * dim + k + i] = self.sy[i][j];
                }
                km[(k + i) * dim + k + j] = self.theta * self.ss[i][j];
            }
        }
        km
    }

    pub(super) fn form_m(&mut self) -> bool {
        let dim = 2 * self.len();
        match invert(&self.middle(), dim) {
            Some(m) => {
                self.m = m;
                true
            }
            None => false,
        }
    }

    /// `out = M v`.
    pub(super) fn m_times(&self, v: &[f64], out: &mut [f64]) {
        let dim = v.len();
        for (r, o) in out.iter_mut().enumerate() {
            *o = dot(&self.m[r * dim..(r + 1) * dim], v);
        }
    }

    /// Row `i` of `W = [Y θS]`.
    pub(super) fn w_row(&self, i: usize, out: &mut [f64]) {
        let k = self.len();
        for j in 0..k {
            out[j] = self.y[j][i];
            out[k + j] = self.theta * self.s[j][i];
        }
    }

    /// `out = Wᵀ v`.
    pub(super) fn wt_times(&self, v: &[f64], out: &mut [f64]) {
        let k = self.len();
        for j in 0..k {
            out[j] = dot(&self.y[j], v);
            out[k + j] = self.theta * dot(&self.s[j], v);
        }
    }

    /// Entry `(r, c)` of `WᵀW`.
    pub(super) fn wtw(&self, r: usize, c: usize) -> f64 {
        let k = self.len();
        let t = self.theta;
        match (r < k, c < k) {
            (true, true) => self.yy[r][c],
            (true, false) => t * self.sy[c - k][r],
            (false, true) => t * self.sy[r - k][c],
            (false, false) => t * t * self.ss[r - k][c - k],
        }
    }
}
