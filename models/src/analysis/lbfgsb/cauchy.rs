//! Step 1 of an iteration: the generalized Cauchy point, the first
//! minimiser of the quadratic model along the projected steepest-descent
//! path.

use std::collections::BinaryHeap;

use super::bounds::Breakpoint;
use super::dense::dot;
use super::model::Model;
use super::workspace::Workspace;

/// Step 1: the generalized Cauchy point of `model` into `ws.xc`, and `M Wᵀ(xᶜ − x)`
/// into `ws.mc`. `false` if the model has no minimiser along the path
/// (possible only when rounding has spoilt `B`'s positive definiteness).
pub(super) fn cauchy_point(model: Model<'_>, ws: &mut Workspace) -> bool {
    let Model { x, g, bounds, mem } = model;
    let n = x.len();
    let dim = 2 * mem.len();
    let theta = mem.theta;

    // Moving coordinates travel along −g until their bound; those already
    // at the bound they are pushed against do not move at all.
    ws.breaks.clear();
    ws.xc.copy_from_slice(x);
    ws.d.fill(0.0);
    let mut sq_norm = 0.0; // dᵀd over the coordinates still moving
    let mut moving = 0usize;
    for i in 0..n {
        let gi = g[i];
        let t = if gi < 0.0 {
            (bounds.upper[i] - x[i]) / -gi
        } else if gi > 0.0 {
            (x[i] - bounds.lower[i]) / gi
        } else {
            continue;
        };
        if t <= 0.0 {
            continue;
        }
        ws.d[i] = -gi;
        sq_norm += gi * gi;
        moving += 1;
        if t.is_finite() {
            ws.breaks.push(Breakpoint { t, index: i });
        }
    }
    ws.mc.clear();
    ws.mc.resize(dim, 0.0);
    if moving == 0 {
        return true;
    }

    // p = Wᵀd, c = Wᵀz (z = path point − x), kept premultiplied by M too.
    let mut p = vec![0.0; dim];
    let mut mp = vec![0.0; dim];
    let mut c = vec![0.0; dim];
    let mut w = vec![0.0; dim];
    let mut mw = vec![0.0; dim];
    if dim > 0 {
        mem.wt_times(&ws.d, &mut p);
        mem.m_times(&p, &mut mp);
    }
    // Along a segment starting at path parameter t, with z = t·d on the
    // moving coordinates: q'(t) = gᵀd + dᵀBz = (θt − 1)dᵀd − pᵀMc and
    // q'' = dᵀBd = θdᵀd − pᵀMp.
    let mut heap = BinaryHeap::from(std::mem::take(&mut ws.breaks));
    let mut t_seg = 0.0;
    let mut slope = -sq_norm;
    let mut curv = theta * sq_norm - dot(&p, &mp);
    let mut dt_min = if curv > 0.0 {
        -slope / curv
    } else {
        f64::INFINITY
    };
    while let Some(bp) = heap.peek().copied() {
        let dt = bp.t - t_seg;
        if dt_min < dt {
            break;
        }
        heap.pop();
        // Advance to the breakpoint and pin coordinate b to its bound.
        let b = bp.index;
        let gb = g[b];
        ws.xc[b] = if ws.d[b] > 0.0 {
            bounds.upper[b]
        } else {
            bounds.lower[b]
        };
        t_seg = bp.t;
        for j in 0..dim {
            c[j] += dt * p[j];
            ws.mc[j] += dt * mp[j];
        }
        ws.d[b] = 0.0;
        sq_norm -= gb * gb;
        moving -= 1;
        if moving == 0 {
            break;
        }
        if dim > 0 {
            mem.w_row(b, &mut w);
            mem.m_times(&w, &mut mw);
            for j in 0..dim {
                p[j] += gb * w[j];
                mp[j] += gb * mw[j];
            }
        }
        slope = (theta * t_seg - 1.0) * sq_norm - dot(&p, &ws.mc);
        curv = theta * sq_norm - dot(&p, &mp);
        if slope >= 0.0 {
            dt_min = 0.0;
            break;
        }
        dt_min = if curv > 0.0 {
            -slope / curv
        } else {
            f64::INFINITY
        };
    }
    ws.breaks = heap.into_vec();
    if moving == 0 {
        return true;
    }
    if !dt_min.is_finite() {
        return false;
    }
    let dt_min = dt_min.max(0.0);
    let t = t_seg + dt_min;
    for (i, (xc, &d)) in ws.xc.iter_mut().zip(&ws.d).enumerate() {
        if d != 0.0 {
            *xc = bounds.clamp(i, x[i] + t * d);
        }
    }
    for (mc, &mp) in ws.mc.iter_mut().zip(&mp) {
        *mc += dt_min * mp;
    }
    true
}
