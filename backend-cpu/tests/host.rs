//! `Host`, the CPU kernels over borrowed slices, gives the bits of the core's
//! `Slices` (the reference) for every instruction set this CPU has, through
//! the per-parameter API: perturb, θ written out, fused de-noise + SGD.

use smoothout::{
    Config, Denoise, Draw, Noise, Param, ParamSpec, Real, Scaling, Sgd, Slices, StateOps,
};
use smoothout_cpu::{Host, Isa};

fn specs() -> Vec<ParamSpec> {
    vec![
        ParamSpec::weight("conv.weight", [16, 3, 5, 5]),
        ParamSpec::bias("conv.bias", 16),
        ParamSpec::weight("fc.weight", [334, 75]),
        ParamSpec::bias("fc.bias", 10_003),
    ]
}

fn init<T: Real>(len: usize, salt: usize) -> Vec<T> {
    (0..len)
        .map(|i| T::from_f64(((i * 31 + salt * 7) % 101) as f64 / 101.0 - 0.5))
        .collect()
}

/// One parameter on two backends, perturbed, written out and updated in
/// step, compared bit for bit after each stage.
fn same_on<T: Real, B>(host: &B, config: Config)
where
    B: StateOps<Elem = T, Buffer = [T]>
        + smoothout::PerturbOps
        + smoothout::UpdateOps
        + smoothout::NoiseOps
        + smoothout::NormOps,
{
    let reference = Slices::<T>::new();
    let sgd = Sgd::new(0.05, 0.9, 1e-4).expect("valid");
    for (i, spec) in specs().into_iter().enumerate() {
        let id = 100 + i as u64;
        let what = format!("{config:?} {}", spec.name);
        let mut p = Param::new(host, config, id, spec.clone()).expect("new");
        let mut r = Param::new(&reference, config, id, spec.clone()).expect("new");
        let (mut w, mut wr) = (init::<T>(spec.len(), i), init::<T>(spec.len(), i));
        let grad = init::<T>(spec.len(), i + 1);
        let (mut v, mut vr) = (vec![T::zero(); spec.len()], vec![T::zero(); spec.len()]);
        for step in 0..2 {
            let draw = Draw::new(step, 1);
            if config.noise.additive().is_some() {
                let (mut t, mut tr) = (vec![T::nan(); w.len()], vec![T::nan(); w.len()]);
                p.write_noise(host, &w, draw, &mut t).expect("write_noise");
                r.write_noise(&reference, &wr, draw, &mut tr)
                    .expect("write_noise");
                assert!(bits(&t) == bits(&tr), "{what}: θ written at {draw:?}");
            }
            p.perturb(host, &mut w, draw).expect("perturb");
            r.perturb(&reference, &mut wr, draw).expect("perturb");
            assert!(bits(&w) == bits(&wr), "{what}: perturbed at {draw:?}");
            p.denoise_sgd(host, &mut w, &grad, &mut v, &sgd, draw)
                .expect("update");
            r.denoise_sgd(&reference, &mut wr, &grad, &mut vr, &sgd, draw)
                .expect("update");
            assert!(bits(&w) == bits(&wr), "{what}: updated at {draw:?}");
            assert!(bits(&v) == bits(&vr), "{what}: velocity at {draw:?}");
        }
    }
}

fn bits<T: Real>(x: &[T]) -> Vec<u64> {
    x.iter().map(|&v| Real::to_f64(v).to_bits()).collect()
}

fn configs() -> Vec<Config> {
    let mut out = Vec::new();
    for scaling in [Scaling::Fixed, Scaling::PerElement, Scaling::FilterNorm] {
        for noise in [
            Noise::uniform(0.05),
            Noise::gaussian(0.01),
            Noise::bernoulli(0.1),
        ] {
            for denoise in [Denoise::Regenerate, Denoise::Exact] {
                let c = Config::new(noise.clone().expect("valid"))
                    .with_scaling(scaling)
                    .with_denoise(denoise)
                    .with_seed(21);
                if c.validate().is_ok() {
                    out.push(c);
                }
            }
        }
    }
    out
}

#[test]
fn every_instruction_set_gives_the_reference_bits() {
    let isas: Vec<Isa> = [Isa::Baseline, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|i| i.supported())
        .collect();
    for isa in isas {
        for config in configs() {
            same_on(&Host::<f32>::with_isa(isa).expect("supported"), config);
            same_on(&Host::<f64>::with_isa(isa).expect("supported"), config);
        }
    }
    assert_eq!(Host::<f32>::new().isa(), Isa::detect());
}
