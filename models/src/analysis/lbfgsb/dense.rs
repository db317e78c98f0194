//! Small dense linear algebra: dot products, and the `2m × 2m` solves and
//! inverses of the compact form (row-major, partial pivoting).

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a += sign · w wᵀ` on the upper triangle of the square matrix `a`.
pub(super) fn accumulate_outer(a: &mut [f64], w: &[f64], sign: f64) {
    let dim = w.len();
    for r in 0..dim {
        let wr = sign * w[r];
        for c in r..dim {
            a[r * dim + c] += wr * w[c];
        }
    }
}

/// Solves `a x = b` in place (`b` becomes `x`) by Gaussian elimination with
/// partial pivoting; `a` is `dim × dim` row-major and is overwritten.
/// `false` if `a` is singular or the solution is not finite.
pub(super) fn solve(a: &mut [f64], dim: usize, b: &mut [f64]) -> bool {
    for col in 0..dim {
        let pivot_row = (col..dim)
            .max_by(|&r, &s| a[r * dim + col].abs().total_cmp(&a[s * dim + col].abs()))
            .unwrap_or(col);
        let pivot = a[pivot_row * dim + col];
        if pivot == 0.0 || !pivot.is_finite() {
            return false;
        }
        if pivot_row != col {
            for c in 0..dim {
                a.swap(col * dim + c, pivot_row * dim + c);
            }
            b.swap(col, pivot_row);
        }
        for r in col + 1..dim {
            let factor = a[r * dim + col] / pivot;
            if factor != 0.0 {
                for c in col..dim {
                    a[r * dim + c] -= factor * a[col * dim + c];
                }
                b[r] -= factor * b[col];
            }
        }
    }
    for r in (0..dim).rev() {
        let mut v = b[r];
        for c in r + 1..dim {
            v -= a[r * dim + c] * b[c];
        }
        b[r] = v / a[r * dim + r];
    }
    b.iter().all(|v| v.is_finite())
}

/// The inverse of the `dim × dim` row-major matrix `a`, column by column.
pub(super) fn invert(a: &[f64], dim: usize) -> Option<Vec<f64>> {
    let mut inv = vec![0.0; dim * dim];
    let mut col = vec![0.0; dim];
    let mut work = vec![0.0; dim * dim];
    for c in 0..dim {
        work.copy_from_slice(a);
        col.fill(0.0);
        col[c] = 1.0;
        if !solve(&mut work, dim, &mut col) {
            return None;
        }
        for r in 0..dim {
            inv[r * dim + c] = col[r];
        }
    }
    // M is symmetric; average away the rounding asymmetry.
    for r in 0..dim {
        for c in r + 1..dim {
            let v = 0.5 * (inv[r * dim + c] + inv[c * dim + r]);
            inv[r * dim + c] = v;
            inv[c * dim + r] = v;
        }
    }
    Some(inv)
}
