//! Unit tests of the pieces: the compact form, the Cauchy point, the
//! subspace step, the solver, the cubic step and the breakpoint heap.

use std::collections::BinaryHeap;

use super::bounds::Breakpoint;
use super::dense::solve;
use super::search::{cubic_minimiser, Trial};
use super::*;

/// `B v` from the compact form.
fn compact_times(mem: &Memory, v: &[f64]) -> Vec<f64> {
    let dim = 2 * mem.len();
    let mut wtv = vec![0.0; dim];
    let mut mwtv = vec![0.0; dim];
    mem.wt_times(v, &mut wtv);
    mem.m_times(&wtv, &mut mwtv);
    let mut w = vec![0.0; dim];
    (0..v.len())
        .map(|i| {
            mem.w_row(i, &mut w);
            mem.theta * v[i] - dot(&w, &mwtv)
        })
        .collect()
}

/// The compact representation equals the BFGS recursion from `θI`
/// applied to the stored pairs in order, as an explicit matrix.
#[test]
fn compact_form_matches_dense_bfgs() {
    let n = 5;
    let mut mem = Memory::new(3);
    // Pairs with sᵀy > 0 from a fixed SPD "Hessian" plus a perturbation.
    let mut pairs = Vec::new();
    for k in 0..5 {
        let s: Vec<f64> = (0..n)
            .map(|i| ((i * 7 + k * 3) % 5) as f64 - 1.7 + 0.1 * k as f64)
            .collect();
        let y: Vec<f64> = (0..n)
            .map(|i| (1.0 + i as f64) * s[i] + 0.3 * s[(i + 1) % n])
            .collect();
        assert!(dot(&s, &y) > 0.0);
        assert!(mem.push(&s, &y));
        pairs.push((s, y));
    }
    assert_eq!(mem.len(), 3);
    let kept = &pairs[2..];
    let theta = mem.theta;
    let mut b = vec![0.0; n * n];
    for i in 0..n {
        b[i * n + i] = theta;
    }
    for (s, y) in kept {
        let bs: Vec<f64> = (0..n).map(|i| dot(&b[i * n..(i + 1) * n], s)).collect();
        let sbs = dot(s, &bs);
        let sy = dot(s, y);
        for i in 0..n {
            for j in 0..n {
                b[i * n + j] += -bs[i] * bs[j] / sbs + y[i] * y[j] / sy;
            }
        }
    }
    for e in 0..n {
        let mut v = vec![0.0; n];
        v[e] = 1.0;
        let col = compact_times(&mem, &v);
        for i in 0..n {
            // Tolerance: a few hundred ulps of the matrix scale (~10).
            assert!(
                (col[i] - b[i * n + e]).abs() < 1e-11,
                "B[{i}][{e}]: compact {} dense {}",
                col[i],
                b[i * n + e]
            );
        }
    }
}

/// The point `x` and gradient `g` (in `n = 6`, as [`sample_memory`]) that
/// the Cauchy and subspace tests start from.
fn sample_point() -> ([f64; 6], [f64; 6]) {
    (
        [0.1, -0.2, 0.3, 0.0, 0.5, -0.4],
        [1.5, -2.0, 0.7, 3.0, -0.4, 1.1],
    )
}

/// Step 1 (and with `subspace` step 2) from [`sample_point`] within
/// `bounds`: the workspace holding `xᶜ` (and `x̄`).
fn steps_at_sample_point(mem: &Memory, bounds: &Bounds<'_>, subspace: bool) -> Workspace {
    let (x, g) = sample_point();
    let model = Model {
        x: &x,
        g: &g,
        bounds,
        mem,
    };
    let mut ws = Workspace::new(x.len());
    assert!(cauchy_point(model, &mut ws));
    if subspace {
        assert!(subspace_minimum(model, &mut ws));
    }
    ws
}

/// A memory of three pairs in `n = 6` and the dense `B` it represents.
fn sample_memory() -> (Memory, Vec<f64>) {
    let n = 6;
    let mut mem = Memory::new(3);
    for k in 0..3 {
        let s: Vec<f64> = (0..n)
            .map(|i| ((i * 5 + k * 2) % 7) as f64 / 3.0 - 0.9)
            .collect();
        let y: Vec<f64> = (0..n)
            .map(|i| (0.5 + i as f64) * s[i] - 0.2 * s[(i + 2) % n])
            .collect();
        assert!(mem.push(&s, &y));
    }
    let mut b = vec![0.0; n * n];
    for e in 0..n {
        let mut v = vec![0.0; n];
        v[e] = 1.0;
        for (i, col) in compact_times(&mem, &v).into_iter().enumerate() {
            b[i * n + e] = col;
        }
    }
    (mem, b)
}

/// `gᵀz + ½ zᵀBz`.
fn model(g: &[f64], b: &[f64], z: &[f64]) -> f64 {
    let n = g.len();
    (0..n)
        .map(|i| z[i] * (g[i] + 0.5 * dot(&b[i * n..(i + 1) * n], z)))
        .sum()
}

/// The Cauchy point is the first local minimiser of the model along the
/// projected path, found here by a fine scan of the path.
#[test]
fn cauchy_point_is_first_minimiser_along_the_path() {
    let (mem, b) = sample_memory();
    let n = 6;
    let (x, g) = sample_point();
    let lower = [-0.5, -1.0, -0.1, -0.3, -2.0, -0.6];
    let upper = [0.5, 0.1, 1.0, 0.3, 0.7, 0.2];
    let bounds = Bounds {
        lower: &lower,
        upper: &upper,
    };
    let ws = steps_at_sample_point(&mem, &bounds, false);
    let at = |t: f64| -> Vec<f64> {
        (0..n)
            .map(|i| bounds.clamp(i, x[i] - t * g[i]) - x[i])
            .collect()
    };
    let q = |t: f64| model(&g, &b, &at(t));
    let h = 1e-5;
    let mut t = 0.0;
    while q(t + h) < q(t) && t < 10.0 {
        t += h;
    }
    let z_scan = at(t);
    for i in 0..n {
        // Tolerance: the scan's step h times |g|.
        assert!(
            (ws.xc[i] - x[i] - z_scan[i]).abs() < 4.0 * h,
            "coordinate {i}: {} vs {}",
            ws.xc[i] - x[i],
            z_scan[i]
        );
    }
    // mc = M Wᵀ(xᶜ − x).
    let z: Vec<f64> = (0..n).map(|i| ws.xc[i] - x[i]).collect();
    let mut c = vec![0.0; 6];
    let mut mc = vec![0.0; 6];
    mem.wt_times(&z, &mut c);
    mem.m_times(&c, &mut mc);
    for (j, (want, got)) in mc.iter().zip(&ws.mc).enumerate() {
        assert!((want - got).abs() < 1e-10, "mc[{j}]");
    }
}

/// Without bounds every variable is free and x̄ is the quasi-Newton
/// point x − B⁻¹g.
#[test]
fn unbounded_subspace_step_is_the_quasi_newton_step() {
    let (mem, b) = sample_memory();
    let n = 6;
    let (x, g) = sample_point();
    let (lower, upper) = ([f64::NEG_INFINITY; 6], [f64::INFINITY; 6]);
    let bounds = Bounds {
        lower: &lower,
        upper: &upper,
    };
    let ws = steps_at_sample_point(&mem, &bounds, true);
    let mut step: Vec<f64> = g.iter().map(|v| -v).collect();
    let mut dense = b.clone();
    assert!(solve(&mut dense, n, &mut step));
    for i in 0..n {
        assert!(
            (ws.xbar[i] - x[i] - step[i]).abs() < 1e-10,
            "coordinate {i}: {} vs {}",
            ws.xbar[i] - x[i],
            step[i]
        );
    }
}

#[test]
fn solve_pivots_and_detects_singularity() {
    // Needs a row swap: the (0, 0) entry is zero.
    let mut a = vec![0.0, 2.0, 3.0, 1.0];
    let mut b = vec![4.0, 5.0];
    assert!(solve(&mut a, 2, &mut b));
    assert_eq!(b, [1.0, 2.0]);
    let mut singular = vec![1.0, 2.0, 2.0, 4.0];
    let mut b = vec![1.0, 1.0];
    assert!(!solve(&mut singular, 2, &mut b));
}

#[test]
fn cubic_minimiser_is_exact_on_a_quadratic() {
    // φ(a) = (a − 1)²: values and slopes at 0 and 2.
    let p = Trial {
        a: 0.0,
        f: 1.0,
        slope: -2.0,
    };
    let q = Trial {
        a: 2.0,
        f: 1.0,
        slope: 2.0,
    };
    assert!((cubic_minimiser(&p, &q) - 1.0).abs() < 1e-15);
}

#[test]
fn breakpoints_pop_smallest_first() {
    let mut heap = BinaryHeap::from(vec![
        Breakpoint { t: 3.0, index: 0 },
        Breakpoint { t: 0.5, index: 1 },
        Breakpoint { t: 2.0, index: 2 },
    ]);
    let order: Vec<usize> = std::iter::from_fn(|| heap.pop().map(|b| b.index)).collect();
    assert_eq!(order, [1, 2, 0]);
}
