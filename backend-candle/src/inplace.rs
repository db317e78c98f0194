//! candle storage → our slices, in place: the [`InplaceOp1`] plumbing.
//!
//! candle hands a custom in-place op the variable's whole storage and its
//! [`Layout`]; the variable's elements are `storage[start .. start + len]`
//! when the layout is contiguous. Nothing is copied and nothing is
//! allocated: the closure sees candle's own memory.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Tensor};

use crate::error::{Error, Result};

/// The element types perturbed on the CPU, as the error message names them.
pub(crate) const CPU_DTYPES: &str = "f32 and f64 on the CPU";

/// A variable's elements on the host, typed.
#[derive(Debug)]
pub(crate) enum HostSlice<'a> {
    /// `f32` elements.
    F32(&'a mut [f32]),
    /// `f64` elements.
    F64(&'a mut [f64]),
}

/// The contiguous range of `layout` within its storage, or
/// [`Error::NonContiguous`].
pub(crate) fn contiguous_range(name: &str, layout: &Layout) -> Result<std::ops::Range<usize>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(start..end),
        None => Err(Error::NonContiguous {
            name: name.to_owned(),
        }),
    }
}

/// The elements of a CPU storage that `layout` addresses, as a typed slice.
///
/// # Errors
/// [`Error::NonContiguous`] for a strided layout, [`Error::UnsupportedDtype`]
/// for any element type but `f32` and `f64`.
pub(crate) fn host_slice<'a>(
    name: &str,
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> Result<HostSlice<'a>> {
    let range = contiguous_range(name, layout)?;
    let dtype = storage.dtype();
    let slice = match storage {
        CpuStorage::F32(v) => v.get_mut(range).map(HostSlice::F32),
        CpuStorage::F64(v) => v.get_mut(range).map(HostSlice::F64),
        _ => {
            return Err(Error::UnsupportedDtype {
                name: name.to_owned(),
                dtype,
                supported: CPU_DTYPES,
            })
        }
    };
    // A layout past the end of its storage would be a candle bug; say so
    // instead of panicking.
    slice.ok_or_else(|| {
        Error::Candle(candle_core::Error::msg(format!(
            "layout of `{name}` runs past the end of its storage"
        )))
    })
}

/// Checks, before any memory is touched, that the adapter can work on a
/// variable of this dtype on its device.
pub(crate) fn check_dtype(name: &str, dtype: DType, supported: &'static str) -> Result<()> {
    match dtype {
        DType::F32 | DType::F64 => Ok(()),
        dtype => Err(Error::UnsupportedDtype {
            name: name.to_owned(),
            dtype,
            supported,
        }),
    }
}

/// What an in-place visit does with the variable's memory, per device.
pub(crate) trait Visit {
    /// The variable's memory on the host.
    fn host(&mut self, slice: HostSlice<'_>) -> Result<()>;

    /// The variable's memory on a CUDA device.
    #[cfg(feature = "cuda")]
    fn cuda(
        &mut self,
        storage: &mut candle_core::CudaStorage,
        range: std::ops::Range<usize>,
    ) -> Result<()>;
}

/// An [`InplaceOp1`] that hands the variable's memory to a [`Visit`] and
/// keeps the typed error (candle's op signature only carries its own).
struct Op<'a, V> {
    name: &'a str,
    visit: RefCell<&'a mut V>,
    error: RefCell<Option<Error>>,
}

impl<V> Op<'_, V> {
    fn fail(&self, e: Error) -> candle_core::Error {
        let msg = candle_core::Error::msg(format!("smoothout: {e}"));
        *self.error.borrow_mut() = Some(e);
        msg
    }
}

impl<V: Visit> InplaceOp1 for Op<'_, V> {
    fn name(&self) -> &'static str {
        "smoothout"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let r = host_slice(self.name, storage, layout)
            .and_then(|slice| self.visit.borrow_mut().host(slice));
        r.map_err(|e| self.fail(e))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &mut candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<()> {
        let r = contiguous_range(self.name, layout)
            .and_then(|range| self.visit.borrow_mut().cuda(storage, range));
        r.map_err(|e| self.fail(e))
    }
}

/// Runs `visit` on `tensor`'s own memory, in place, through candle's
/// [`Tensor::inplace_op1`]; our typed error comes back as it was raised.
pub(crate) fn visit<V: Visit>(name: &str, tensor: &Tensor, visit: &mut V) -> Result<()> {
    let op = Op {
        name,
        visit: RefCell::new(visit),
        error: RefCell::new(None),
    };
    let r = tensor.inplace_op1(&op);
    match (op.error.into_inner(), r) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(device_error(name, tensor, e)),
        (None, Ok(())) => Ok(()),
    }
}

/// candle's own refusal (its default `cuda_fwd`/`metal_fwd` without our
/// feature) as a typed error that says what to do.
fn device_error(name: &str, tensor: &Tensor, e: candle_core::Error) -> Error {
    if tensor.device().is_cpu() {
        return Error::Candle(e);
    }
    Error::UnsupportedDevice {
        name: name.to_owned(),
        device: format!("{:?}", tensor.device().location()),
        hint: if tensor.device().is_cuda() {
            "build smoothout-candle with its feature `cuda`"
        } else {
            "SmoothOut runs on candle's CPU and CUDA devices only"
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    struct AddOne;
    impl Visit for AddOne {
        fn host(&mut self, slice: HostSlice<'_>) -> Result<()> {
            match slice {
                HostSlice::F32(s) => s.iter_mut().for_each(|x| *x += 1.0),
                HostSlice::F64(s) => s.iter_mut().for_each(|x| *x += 1.0),
            }
            Ok(())
        }
        #[cfg(feature = "cuda")]
        fn cuda(
            &mut self,
            _: &mut candle_core::CudaStorage,
            _: std::ops::Range<usize>,
        ) -> Result<()> {
            unreachable!("CPU test")
        }
    }

    #[test]
    fn visits_the_view_in_place() -> Result<()> {
        let t = Tensor::arange(0f32, 12., &Device::Cpu)?.reshape((3, 4))?;
        // Row 1 is contiguous at offset 4: only it changes, in the same storage.
        let row = t.i(1)?;
        visit("row", &row, &mut AddOne)?;
        let got: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let want: Vec<f32> = (0..12)
            .map(|i| i as f32 + f32::from(u8::from((4..8).contains(&i))))
            .collect();
        assert_eq!(got, want);
        let t64 = Tensor::zeros(5, DType::F64, &Device::Cpu)?;
        visit("t64", &t64, &mut AddOne)?;
        assert_eq!(t64.to_vec1::<f64>()?, vec![1.0; 5]);
        Ok(())
    }

    #[test]
    fn strided_and_unsupported_are_typed_errors() -> Result<()> {
        let t = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?;
        let e = visit("w", &t.t()?, &mut AddOne).unwrap_err();
        assert!(
            matches!(&e, Error::NonContiguous { name } if name == "w"),
            "{e}"
        );
        for dtype in [DType::F16, DType::BF16, DType::U8, DType::I64] {
            let t = Tensor::zeros(4, dtype, &Device::Cpu)?;
            let e = visit("h", &t, &mut AddOne).unwrap_err();
            assert!(
                matches!(&e, Error::UnsupportedDtype { dtype: d, .. } if *d == dtype),
                "{e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(dtype.as_str()) && msg.contains("f32 and f64"),
                "{msg}"
            );
            assert!(check_dtype("h", dtype, CPU_DTYPES).is_err());
        }
        // Through candle's error type the message survives.
        let e: candle_core::Error = Error::NonContiguous { name: "w".into() }.into();
        assert!(e.to_string().contains("`w` is not contiguous"), "{e}");
        Ok(())
    }
}
