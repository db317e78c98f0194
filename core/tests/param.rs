//! The per-parameter API: [`Param`] over borrowed slices ([`Slices`]) gives
//! the bits of the all-parameter step, touches nothing outside its window,
//! is keyed by its id alone, and refuses misuse with typed errors.

use smoothout::{
    param_id, Config, Denoise, Draw, Error, Noise, Param, ParamSpec, Reference, Scaling, Sgd,
    Slices, SmoothOut,
};

fn specs() -> Vec<ParamSpec> {
    vec![
        ParamSpec::weight("fc1.weight", [6, 5]),
        ParamSpec::bias("fc1.bias", 6),
        ParamSpec::normalization("bn.weight", 6),
        ParamSpec::weight("fc2.weight", [3, 6]),
    ]
}

/// Deterministic weights with both signs and a zero.
fn init(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7 + salt * 13) % 17) as f32 / 17.0 - 0.45)
        .collect()
}

/// FNV-1a 64 known answers (the published test vectors of the hash).
#[test]
fn param_id_is_fnv1a_64() {
    assert_eq!(param_id(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(param_id("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(param_id("foobar"), 0x8594_4171_f739_67e8);
}

/// All parameters live in one flat array, as a framework's storage might;
/// each `Param` perturbs its own window through `Slices`, and the results
/// equal `SmoothOut::with_ids` on owned vectors bit for bit, for fixed and
/// per-filter scaling and every de-noise mode. Elements outside the windows
/// (a guard between them) are never written.
#[test]
fn params_on_windows_of_one_array_match_the_all_parameter_step() {
    let specs = specs();
    let ids: Vec<u64> = specs.iter().map(|s| param_id(&s.name)).collect();
    let sgd = Sgd::new(0.05, 0.9, 0.0).expect("valid");
    for scaling in [Scaling::Fixed, Scaling::FilterNorm] {
        for denoise in [Denoise::Regenerate, Denoise::Exact, Denoise::Off] {
            let config = Config::new(Noise::uniform(0.1).expect("valid"))
                .with_scaling(scaling)
                .with_denoise(denoise)
                .with_seed(11);
            let owned: Vec<Vec<f32>> = specs
                .iter()
                .enumerate()
                .map(|(i, s)| init(s.len(), i))
                .collect();
            // One array: [guard, p0, guard, p1, guard, ...].
            const GUARD: f32 = 1234.5;
            let mut flat = vec![GUARD];
            let mut windows = Vec::new();
            for w in &owned {
                windows.push(flat.len()..flat.len() + w.len());
                flat.extend_from_slice(w);
                flat.push(GUARD);
            }
            let b = Slices::<f32>::new();
            let mut params: Vec<Param<Slices<f32>>> = ids
                .iter()
                .zip(&specs)
                .map(|(&id, s)| Param::new(&b, config, id, s.clone()).expect("new"))
                .collect();
            let r = Reference::<f32>::new();
            let pairs = ids.iter().copied().zip(specs.iter().cloned());
            let mut so = SmoothOut::with_ids(&r, config, pairs).expect("with_ids");
            let mut want = owned.clone();
            let grads = owned.clone();
            let mut v_flat = vec![0.0f32; flat.len()];
            let mut v_want: Vec<Vec<f32>> = owned.iter().map(|w| vec![0.0; w.len()]).collect();
            for step in 0..3 {
                let draw = Draw::new(step, 0);
                for (p, win) in params.iter_mut().zip(&windows) {
                    p.perturb(&b, &mut flat[win.clone()], draw)
                        .expect("perturb");
                }
                so.perturb(&r, &mut want, draw).expect("reference perturb");
                for (i, win) in windows.iter().enumerate() {
                    assert_eq!(
                        &flat[win.clone()],
                        want[i].as_slice(),
                        "{config:?} perturbed {i}"
                    );
                }
                for (i, (p, win)) in params.iter_mut().zip(&windows).enumerate() {
                    p.denoise_sgd(
                        &b,
                        &mut flat[win.clone()],
                        &grads[i],
                        &mut v_flat[win.clone()],
                        &sgd,
                        draw,
                    )
                    .expect("denoise_sgd");
                }
                so.denoise_sgd(&r, &mut want, &grads, &mut v_want, &sgd, draw)
                    .expect("reference denoise_sgd");
                for (i, win) in windows.iter().enumerate() {
                    assert_eq!(
                        &flat[win.clone()],
                        want[i].as_slice(),
                        "{config:?} updated {i}"
                    );
                }
            }
            let guards: Vec<f32> = (0..=windows.len())
                .map(|k| {
                    if k == 0 {
                        flat[0]
                    } else {
                        flat[windows[k - 1].end]
                    }
                })
                .collect();
            assert!(guards.iter().all(|&g| g == GUARD), "{config:?}: {guards:?}");
        }
    }
}

/// A parameter's noise depends on its id only: the same spec under the same
/// id gets the same θ whatever its position in the set, and another id gets
/// other noise. Index ids (`SmoothOut::new`) are the ids 0, 1, 2, ….
#[test]
fn noise_is_keyed_by_id_not_position() {
    let config = Config::new(Noise::gaussian(0.05).expect("valid")).with_seed(5);
    let b = Slices::<f32>::new();
    let spec = ParamSpec::weight("w", [4, 4]);
    let draw = Draw::new(9, 1);
    let theta = |id: u64| {
        let mut p = Param::new(&b, config, id, spec.clone()).expect("new");
        let w = vec![0.25f32; 16];
        let mut out = vec![f32::NAN; 16];
        p.write_noise(&b, &w, draw, &mut out).expect("write_noise");
        out
    };
    let r = Reference::<f32>::new();
    let mut reversed: Vec<ParamSpec> = specs();
    reversed.insert(0, spec.clone());
    let mut so = SmoothOut::with_ids(
        &r,
        config,
        [(77, spec.clone()), (3, ParamSpec::bias("b", 2))],
    )
    .expect("with_ids");
    let mut ws = vec![vec![0.25f32; 16], vec![0.0; 2]];
    so.perturb(&r, &mut ws, draw).expect("perturb");
    let added: Vec<f32> = theta(77).iter().map(|t| 0.25 + t).collect();
    assert_eq!(ws[0], added, "id 77 at position 0");
    assert_ne!(theta(77), theta(78));
    let mut so = SmoothOut::new(&r, config, reversed).expect("new");
    let mut ws: Vec<Vec<f32>> = std::iter::once(vec![0.25f32; 16])
        .chain(specs().iter().map(|s| vec![0.0; s.len()]))
        .collect();
    so.perturb(&r, &mut ws, draw).expect("perturb");
    let added: Vec<f32> = theta(0).iter().map(|t| 0.25 + t).collect();
    assert_eq!(ws[0], added, "index 0 is id 0");
}

#[track_caller]
fn error<T: std::fmt::Debug>(r: Result<T, Error>) -> Error {
    let e = r.expect_err("misuse was accepted");
    assert!(!e.to_string().trim().is_empty(), "{e:?} has no message");
    e
}

/// Misuse of a `Param` is a typed error and leaves the buffer as it was.
#[test]
fn param_misuse_is_a_typed_error() {
    let b = Slices::<f64>::new();
    let config = Config::new(Noise::uniform(0.1).expect("valid"));
    let mut p = Param::new(&b, config, 1, ParamSpec::bias("b", 3)).expect("new");
    let mut w = [1.0f64; 3];
    let d0 = Draw::new(0, 0);
    assert_eq!(error(p.denoise(&b, &mut w, d0)), Error::NotPerturbed);
    assert!(matches!(
        error(p.perturb(&b, &mut [1.0; 4], d0)),
        Error::LengthMismatch {
            expected: 3,
            actual: 4,
            ..
        }
    ));
    assert_eq!(p.applied(), None);
    p.perturb(&b, &mut w, d0).expect("perturb");
    let perturbed = w;
    assert_eq!(error(p.perturb(&b, &mut w, d0)), Error::AlreadyPerturbed);
    assert_eq!(
        error(p.denoise(&b, &mut w, Draw::new(0, 1))),
        Error::DrawMismatch
    );
    let sgd = Sgd::new(0.1, 0.0, 0.0).expect("valid");
    assert!(matches!(
        error(p.denoise_sgd(&b, &mut w, &[0.0; 2], &mut [0.0; 3], &sgd, d0)),
        Error::LengthMismatch { .. }
    ));
    assert_eq!(w, perturbed, "a refused call wrote the buffer");
    assert_eq!(p.applied(), Some(d0));
    p.denoise(&b, &mut w, d0).expect("denoise");

    let bern = Config::new(Noise::bernoulli(0.2).expect("valid")).with_denoise(Denoise::Exact);
    let mut p = Param::new(&b, bern, 1, ParamSpec::bias("b", 3)).expect("new");
    let mut out = [0.0; 3];
    assert!(matches!(
        error(p.write_noise(&b, &w, d0, &mut out)),
        Error::NotRegenerable { .. }
    ));
    assert!(matches!(
        error(Param::new(&b, config, 1, ParamSpec::weight("w", [0, 3]))),
        Error::EmptyParameter { .. }
    ));
    let dup = [(4, ParamSpec::bias("a", 2)), (4, ParamSpec::bias("b", 2))];
    assert_eq!(
        error(SmoothOut::with_ids(&Reference::<f64>::new(), config, dup)),
        Error::DuplicateId {
            id: 4,
            first: 0,
            second: 1
        }
    );
}
