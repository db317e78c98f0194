//! The geometry of a stride-1 convolution whose output rows are as wide as
//! its input's, the one `direct_gemm`'s in-place kernels take (on x86-64).

use smoothout::tensor::Conv2d;

/// A stride-1 convolution whose output rows are as wide as its input's: pixel
/// `j` of the output reads the input at `j + (ky − pad) · width + kx − pad`
/// for kernel offset `(ky, kx)`, where that lies inside the image.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Same {
    pub(crate) channels: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) out_h: usize,
    pub(crate) kernel_h: usize,
    pub(crate) kernel_w: usize,
    pub(crate) padding: usize,
}

impl Same {
    /// The largest kernel side the in-place kernels take.
    pub(crate) const MAX_KERNEL: usize = 16;

    /// `conv`'s geometry, where it is one (and its kernel at most
    /// [`Same::MAX_KERNEL`] on a side).
    pub(crate) fn of(conv: &Conv2d) -> Option<Self> {
        let fits = conv.kernel_h <= Self::MAX_KERNEL && conv.kernel_w <= Self::MAX_KERNEL;
        (conv.stride == 1 && conv.out_w() == conv.width && fits).then(|| Same {
            channels: conv.channels,
            height: conv.height,
            width: conv.width,
            out_h: conv.out_h(),
            kernel_h: conv.kernel_h,
            kernel_w: conv.kernel_w,
            padding: conv.padding,
        })
    }

    /// Rows and columns of an image's column matrix, after checking that
    /// the geometry is one the in-place kernels take.
    ///
    /// # Panics
    /// If it is not.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn checked(&self) -> (usize, usize) {
        let (kh, kw, pad) = (self.kernel_h, self.kernel_w, self.padding);
        assert!(kh <= Self::MAX_KERNEL && kw <= Self::MAX_KERNEL && 2 * pad + 1 == kw);
        assert!(self.out_h + kh == self.height + 2 * pad + 1);
        (self.channels * kh * kw, self.out_h * self.width)
    }

    /// Elements of one input image.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Elements of one image padded on every side by `padding` zeros.
    pub(crate) fn padded_len(&self) -> usize {
        self.channels * self.padded_plane()
    }

    /// Elements of one padded plane.
    pub(crate) fn padded_plane(&self) -> usize {
        let pad = 2 * self.padding;
        (self.height + pad) * (self.width + pad)
    }

    /// Row `q` of the columns as (channel, kernel row, kernel column).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn kernel_index(&self, q: usize) -> (usize, usize, usize) {
        let (kh, kw) = (self.kernel_h, self.kernel_w);
        (q / (kh * kw), q / kw % kh, q % kw)
    }
}
