//! The sizes of a convolution or pooling as the tensor kernels take them:
//! one array each, in the order the kernels read it. A module of its own so
//! that the host-emulation tests, which launch the kernels through the
//! stand-in driver, include this very arithmetic (`#[path]`) rather than a
//! copy.

use smoothout::tensor::{Conv2d, Pool2d, PoolKind};

/// A convolution's sizes as the kernels take them.
pub(crate) fn conv_args(c: &Conv2d) -> [u64; 10] {
    [
        c.batch,
        c.channels,
        c.height,
        c.width,
        c.kernel_h,
        c.kernel_w,
        c.stride,
        c.padding,
        c.out_h(),
        c.out_w(),
    ]
    .map(|v| v as u64)
}

/// A pooling's sizes as the kernels take them, and its kind.
pub(crate) fn pool_args(p: &Pool2d) -> ([u64; 8], i32) {
    let sizes = [
        p.planes(),
        p.height,
        p.width,
        p.kernel,
        p.stride,
        p.padding,
        p.out_h(),
        p.out_w(),
    ]
    .map(|v| v as u64);
    let kind = match p.kind {
        PoolKind::Max => 0,
        PoolKind::Avg => 1,
    };
    (sizes, kind)
}
