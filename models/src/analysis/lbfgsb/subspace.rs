//! Step 2 of an iteration: the model minimised over the variables free at
//! the Cauchy point (Sherman–Morrison–Woodbury, a `2m × 2m` solve), with
//! the solve of `dense.rs`.

use super::dense::{accumulate_outer, dot, solve};
use super::model::Model;
use super::workspace::Workspace;

/// Step 2: minimises `model` over the coordinates free at `xᶜ`, writing
/// `x̄` into `ws.xbar`. `false` if the reduced system is singular.
pub(super) fn subspace_minimum(model: Model<'_>, ws: &mut Workspace) -> bool {
    let Model { x, g, bounds, mem } = model;
    let n = x.len();
    let k = mem.len();
    let dim = 2 * k;
    let theta = mem.theta;
    ws.xbar.copy_from_slice(&ws.xc);
    ws.free.clear();
    ws.free
        .extend((0..n).filter(|&i| bounds.lower[i] < ws.xc[i] && ws.xc[i] < bounds.upper[i]));
    if ws.free.is_empty() {
        return true;
    }

    // Reduced gradient of the model at xᶜ: r = Zᵀ(g + θ(xᶜ − x) − W M c).
    let mut w = vec![0.0; dim];
    ws.r.clear();
    for &i in &ws.free {
        let mut ri = g[i] + theta * (ws.xc[i] - x[i]);
        if dim > 0 {
            mem.w_row(i, &mut w);
            ri -= dot(&w, &ws.mc);
        }
        ws.r.push(ri);
    }

    // With V = ZᵀW, Sherman–Morrison–Woodbury gives the reduced inverse
    // (θI − VMVᵀ)⁻¹ r = r/θ + V (M⁻¹ − VᵀV/θ)⁻¹ Vᵀr / θ², and M⁻¹ is K.
    if dim > 0 {
        let mut vtr = vec![0.0; dim];
        let mut vtv = vec![0.0; dim * dim];
        let free_count = ws.free.len();
        if 2 * free_count <= n {
            for (pos, &i) in ws.free.iter().enumerate() {
                mem.w_row(i, &mut w);
                accumulate_outer(&mut vtv, &w, 1.0);
                for j in 0..dim {
                    vtr[j] += w[j] * ws.r[pos];
                }
            }
        } else {
            // Fewer fixed than free coordinates: VᵀV = WᵀW − (fixed rows).
            for r in 0..dim {
                for c in r..dim {
                    vtv[r * dim + c] = mem.wtw(r, c);
                }
            }
            let mut next_free = ws.free.iter().peekable();
            for i in 0..n {
                if next_free.peek() == Some(&&i) {
                    next_free.next();
                    continue;
                }
                mem.w_row(i, &mut w);
                accumulate_outer(&mut vtv, &w, -1.0);
            }
            for (pos, &i) in ws.free.iter().enumerate() {
                mem.w_row(i, &mut w);
                for j in 0..dim {
                    vtr[j] += w[j] * ws.r[pos];
                }
            }
        }
        let mut system = mem.middle();
        for r in 0..dim {
            for c in 0..dim {
                let v = if r <= c {
                    vtv[r * dim + c]
                } else {
                    vtv[c * dim + r]
                };
                system[r * dim + c] -= v / theta;
            }
        }
        if !solve(&mut system, dim, &mut vtr) {
            return false;
        }
        for (pos, &i) in ws.free.iter().enumerate() {
            mem.w_row(i, &mut w);
            ws.r[pos] = -ws.r[pos] / theta - dot(&w, &vtr) / (theta * theta);
        }
    } else {
        for r in &mut ws.r {
            *r = -*r / theta;
        }
    }
    // ws.r now holds the unconstrained subspace step from xᶜ.

    // Morales–Nocedal: project xᶜ + step onto the box; keep it if it points
    // downhill from x, otherwise shorten the step to stay inside.
    let mut slope = 0.0;
    for (pos, &i) in ws.free.iter().enumerate() {
        ws.xbar[i] = bounds.clamp(i, ws.xc[i] + ws.r[pos]);
    }
    for i in 0..n {
        slope += g[i] * (ws.xbar[i] - x[i]);
    }
    if slope < 0.0 {
        return true;
    }
    let mut alpha = 1.0f64;
    for (pos, &i) in ws.free.iter().enumerate() {
        let step = ws.r[pos];
        let room = if step > 0.0 {
            bounds.upper[i] - ws.xc[i]
        } else if step < 0.0 {
            bounds.lower[i] - ws.xc[i]
        } else {
            continue;
        };
        alpha = alpha.min((room / step).max(0.0));
    }
    for (pos, &i) in ws.free.iter().enumerate() {
        ws.xbar[i] = bounds.clamp(i, ws.xc[i] + alpha * ws.r[pos]);
    }
    true
}
