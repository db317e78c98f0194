//! The shared backend suite ([`smoothout::testgen`]) on [`Cpu`]: the same
//! bits as the reference with one thread, two threads, and two threads with
//! chunk sizes 1, 7, 64 and 1000 (chunks that split noise tiles and rows),
//! in `f32` and `f64`, with the kernels compiled for every instruction set
//! (`Isa::Baseline`, `Avx2`, `Avx512`, where the CPU has it); typed
//! errors for non-contiguous arrays; and buffers handed back with
//! `recycle` given out again: as zeros or copies, or as they are for an
//! output to be overwritten.

use ndarray::{ArrayD, IxDyn};
use smoothout::{
    BlasOps, BufferOps, Config, Draw, Error, Noise, NoiseKey, NoiseOps, NormOps, ParamSpec,
    PerturbOps, Scaling, Sgd, SmoothOut, StateOps, UpdateOps,
};
use smoothout_cpu::{Cpu, Isa};

/// A 1-D array holding `v`.
fn array<T>(v: Vec<T>) -> ArrayD<T> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("a 1-D shape always fits")
}

/// A backend with `threads` threads, the default chunk size unless `chunk`,
/// and the instruction set `Isa::detect` picks.
fn cpu<T: smoothout::Real>(threads: usize, chunk: Option<usize>) -> Cpu<T> {
    let cpu = Cpu::<T>::with_threads(threads).expect("thread pool");
    match chunk {
        Some(c) => cpu.with_chunk(c).expect("non-zero chunk"),
        None => cpu,
    }
}

/// Two threads, chunks of 1000, kernels for `isa`; where the CPU lacks
/// `isa`, the widest it has (so the test still runs), saying so.
fn cpu_isa<T: smoothout::Real>(isa: Isa) -> Cpu<T> {
    let cpu = cpu::<T>(2, Some(1000));
    if isa.supported() {
        cpu.with_isa(isa).expect("supported ISA")
    } else {
        eprintln!(
            "{isa:?} not supported by this CPU: testing {:?} instead",
            cpu.isa()
        );
        cpu
    }
}

/// One [`smoothout::backend_tests!`] module per row: its name, the backend,
/// and optionally the largest buffer length the bodies run; buffers are 1-D
/// arrays.
macro_rules! cpu_suites {
    ($($name:ident: $backend:expr $(, max_len = $max:expr)?;)*) => {$(
        smoothout::backend_tests!($name, $backend, array $(, max_len = $max)?);
    )*};
}

cpu_suites! {
    f32_threads_1: cpu::<f32>(1, None);
    f32_threads_2: cpu::<f32>(2, None);
    // Chunks of 1 and 7 elements regenerate a whole 128-element noise tile
    // for every chunk (up to 128 times the work) without new behaviour past a few
    // tiles: they run the sizes up to 1000 (chunk 1) and 10 000 (chunk 7)
    // elements, which already cross every tile, row and chunk boundary kind.
    f32_threads_2_chunk_1: cpu::<f32>(2, Some(1)), max_len = 1_000;
    f32_threads_2_chunk_7: cpu::<f32>(2, Some(7)), max_len = 10_000;
    f32_threads_2_chunk_64: cpu::<f32>(2, Some(64));
    f32_threads_2_chunk_1000: cpu::<f32>(2, Some(1000));
    f64_threads_2: cpu::<f64>(2, None);
    f64_threads_2_chunk_7: cpu::<f64>(2, Some(7)), max_len = 10_000;
    // The vector instruction sets (the default is `Isa::detect()`, the widest).
    f32_baseline: cpu_isa::<f32>(Isa::Baseline);
    f32_avx2: cpu_isa::<f32>(Isa::Avx2);
    f32_avx512: cpu_isa::<f32>(Isa::Avx512);
    f64_baseline: cpu_isa::<f64>(Isa::Baseline);
    f64_avx2: cpu_isa::<f64>(Isa::Avx2);
}

/// A 3 × 4 array in column-major order: owned, but not standard layout.
fn transposed() -> ArrayD<f32> {
    let a = ArrayD::from_shape_vec(IxDyn(&[4, 3]), (0..12).map(|x| x as f32).collect())
        .expect("12 elements");
    let t = a.reversed_axes();
    assert!(
        t.as_slice().is_none(),
        "the test needs a non-contiguous array"
    );
    t
}

#[track_caller]
fn non_contiguous<T: std::fmt::Debug>(r: smoothout::Result<T>) {
    match r {
        Err(e @ Error::NonContiguous) => assert!(!e.to_string().is_empty()),
        other => panic!("expected Error::NonContiguous, got {other:?}"),
    }
}

#[test]
fn non_contiguous_arrays_are_errors_not_panics() {
    let cpu = cpu::<f32>(2, None);
    let key = NoiseKey::from_seed(1);
    let contiguous = || array(vec![0.5f32; 12]);

    non_contiguous(cpu.fill_noise(key, &Noise::uniform(0.1).unwrap(), &mut transposed()));
    non_contiguous(cpu.drop_out(&mut transposed(), key, 0.5));
    non_contiguous(cpu.row_norms(&transposed(), 4, &mut [0.0; 3]));
    let noise = smoothout::FilterNoise {
        key,
        unit: smoothout::Unit::Uniform,
        strength: 0.1,
        cols: 4,
    };
    non_contiguous(cpu.filter_scales(&transposed(), &noise, &mut array(vec![0.0; 3])));
    non_contiguous(cpu.axpy(1.0, &transposed(), &mut contiguous()));
    non_contiguous(cpu.axpy(1.0, &contiguous(), &mut transposed()));
    non_contiguous(cpu.copy(&transposed(), &mut contiguous()));
    non_contiguous(cpu.copy(&contiguous(), &mut transposed()));
    non_contiguous(cpu.to_vec(&transposed()));
    let sgd = Sgd::new(0.1, 0.9, 0.0).unwrap();
    non_contiguous(cpu.denoise_sgd(
        &mut transposed(),
        &contiguous(),
        &mut contiguous(),
        None,
        &sgd,
    ));
    non_contiguous(cpu.denoise_sgd(
        &mut contiguous(),
        &transposed(),
        &mut contiguous(),
        None,
        &sgd,
    ));
    non_contiguous(cpu.denoise_sgd(
        &mut contiguous(),
        &contiguous(),
        &mut transposed(),
        None,
        &sgd,
    ));

    // Through the step, for every scaling: refused, nothing applied, and the
    // array is left as it was.
    for scaling in [Scaling::Fixed, Scaling::PerElement, Scaling::FilterNorm] {
        let config = Config::new(Noise::uniform(0.1).unwrap()).with_scaling(scaling);
        let mut so = SmoothOut::new(&cpu, config, vec![ParamSpec::weight("w", [3, 4])]).unwrap();
        let mut params = vec![transposed()];
        non_contiguous(so.perturb(&cpu, &mut params, Draw::new(0, 0)));
        assert_eq!(so.applied(), None, "{scaling:?}");
        assert_eq!(params[0], transposed(), "{scaling:?}: array modified");
        // A contiguous copy of the same values goes through.
        let mut params = vec![params[0].as_standard_layout().into_owned()];
        so.perturb(&cpu, &mut params, Draw::new(0, 0)).unwrap();
        so.denoise(&cpu, &mut params, Draw::new(0, 0)).unwrap();
    }
}

/// A backend failure on the second parameter leaves the first one restored
/// and nothing marked as perturbed: bit for bit in exact mode, within the
/// rounding of `(w + θ) − θ` (two roundings of at most half an ulp of
/// `|w| + a` each) when θ is regenerated.
#[test]
fn failed_perturb_restores_the_parameters_already_perturbed() {
    let cpu = cpu::<f32>(2, None);
    let a = 0.1f32;
    let w0: Vec<f32> = (0..12).map(|i| (i as f32 - 6.0) * 0.03).collect();
    for (denoise, scaling) in [
        (smoothout::Denoise::Exact, Scaling::Fixed),
        (smoothout::Denoise::Regenerate, Scaling::Fixed),
        (smoothout::Denoise::Regenerate, Scaling::FilterNorm),
    ] {
        let specs = vec![
            ParamSpec::weight("good", [3, 4]),
            ParamSpec::weight("bad", [4, 3]),
        ];
        let config = Config::new(Noise::uniform(f64::from(a)).unwrap())
            .with_scaling(scaling)
            .with_denoise(denoise);
        let mut so = SmoothOut::new(&cpu, config, specs).unwrap();
        let mut params = vec![array(w0.clone()), transposed()];
        non_contiguous(so.perturb(&cpu, &mut params, Draw::new(3, 0)));
        assert_eq!(so.applied(), None, "{denoise:?} {scaling:?}");
        let w = params[0].as_slice().unwrap();
        for (x, x0) in w.iter().zip(&w0) {
            let bound = match denoise {
                smoothout::Denoise::Exact => 0.0,
                _ => f32::EPSILON * (x0.abs() + a),
            };
            assert!(
                (x - x0).abs() <= bound,
                "{denoise:?} {scaling:?}: {x} vs {x0} (bound {bound})"
            );
        }
    }
}

#[test]
fn recycled_buffers_come_back_as_zeros_or_copies_without_new_memory() {
    let b = cpu::<f32>(2, None);
    let dirty = b.upload(&[1.0, f32::NAN, -3.0]).unwrap();
    assert_eq!(b.fresh_buffers(), 1);
    b.recycle(dirty);
    assert_eq!(b.spare_buffers(), 1);
    // Another length allocates; the recycled one is untouched.
    let other = b.zeros(4).unwrap();
    assert_eq!((b.fresh_buffers(), b.spare_buffers()), (2, 1));
    // Its length gets the recycled memory back, zeroed.
    let z = b.zeros(3).unwrap();
    assert_eq!(b.to_vec(&z).unwrap(), vec![0.0; 3]);
    assert_eq!((b.fresh_buffers(), b.spare_buffers()), (2, 0));
    b.recycle(z);
    // And as a copy of new data.
    let u = b.upload(&[7.0, 8.0, 9.0]).unwrap();
    assert_eq!(b.to_vec(&u).unwrap(), vec![7.0, 8.0, 9.0]);
    assert_eq!(b.fresh_buffers(), 2);
    // Or as it is, for an output to be overwritten: NaN in a debug build.
    b.recycle(u);
    let w = b.for_overwrite(3).unwrap();
    assert_eq!(b.fresh_buffers(), 2);
    if cfg!(debug_assertions) {
        assert!(b.to_vec(&w).unwrap().iter().all(|v| v.is_nan()));
    }
    let u = b.upload(&[7.0, 8.0, 9.0]).unwrap();
    // A buffer that is not flat is not kept.
    b.recycle(ArrayD::zeros(IxDyn(&[2, 2])));
    b.recycle(transposed());
    assert_eq!(b.spare_buffers(), 0);
    let mut host = [0.0f32; 3];
    b.download(&u, &mut host).unwrap();
    assert_eq!(host, [7.0, 8.0, 9.0]);
    assert!(matches!(
        b.download(&other, &mut host),
        Err(Error::LengthMismatch { .. })
    ));
}
