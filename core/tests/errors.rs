//! Every invalid configuration is a typed error, never a panic: one test per
//! case, each asserting the exact [`Error`] variant (and its fields where
//! they say what was wrong) and a non-empty message; and the state after an
//! error is still usable.

use smoothout::reference;
use smoothout::{
    sensitivity, Config, Denoise, Draw, Error, Noise, Objective, ParamSpec, Reference, Scaling,
    Schedule, Sgd, SmoothOut, Unit,
};

/// Unwraps the error and checks its message is not empty.
#[track_caller]
fn error<T>(r: Result<T, Error>) -> Error {
    let Err(e) = r else {
        panic!("an invalid input was accepted")
    };
    assert!(!e.to_string().trim().is_empty(), "{e:?} has no message");
    e
}

/// Whether `e` is [`Error::InvalidSetting`] for the setting `name`.
fn invalid_setting(e: &Error, name: &str) -> bool {
    matches!(e, Error::InvalidSetting { name: n, .. } if *n == name)
}

/// [`sensitivity`] of `w ↦ w[0]` at `w = [0.5]`, 4 copies, seed 1.
fn sensitivity_of_first(
    grid: &[f64],
    unit: Unit,
    values: &mut [f64],
    slopes: &mut [f64],
) -> Result<(), Error> {
    sensitivity(
        grid,
        unit,
        4,
        1,
        &[0.5f64],
        &mut [0.0],
        values,
        slopes,
        |w| w[0],
    )
}

const NON_FINITE_OR_NEGATIVE: [f64; 5] = [
    -1.0,
    -f64::MIN_POSITIVE,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// `noise` refuses every strength of [`NON_FINITE_OR_NEGATIVE`] as an
/// invalid strength `name` carrying that value.
#[track_caller]
fn refuses_every_non_finite_or_negative_strength(
    name: &str,
    noise: fn(f64) -> Result<Noise, Error>,
) {
    for strength in NON_FINITE_OR_NEGATIVE {
        let e = error(noise(strength));
        assert!(
            matches!(e, Error::InvalidStrength { name: n, value } if n == name && value.to_bits() == strength.to_bits()),
            "{e:?}"
        );
    }
}

fn b() -> Reference<f32> {
    Reference::new()
}

fn specs() -> Vec<ParamSpec> {
    vec![
        ParamSpec::weight("fc.weight", [3, 4]),
        ParamSpec::bias("fc.bias", 3),
    ]
}

fn params() -> Vec<Vec<f32>> {
    vec![vec![0.5; 12], vec![-0.25; 3]]
}

fn smoothout() -> SmoothOut<Reference<f32>> {
    SmoothOut::new(&b(), Config::new(Noise::uniform(0.1).unwrap()), specs()).unwrap()
}

/// [`smoothout`] with [`params`] perturbed at `draw`.
fn perturbed_at(draw: Draw) -> (SmoothOut<Reference<f32>>, Vec<Vec<f32>>) {
    let mut so = smoothout();
    let mut p = params();
    so.perturb(&b(), &mut p, draw).unwrap();
    (so, p)
}

#[test]
fn uniform_strength_must_be_finite_and_non_negative() {
    refuses_every_non_finite_or_negative_strength("a", Noise::uniform);
    assert!(Noise::uniform(0.0).is_ok() && Noise::uniform(1e300).is_ok());
}

#[test]
fn gaussian_std_must_be_finite_and_non_negative() {
    refuses_every_non_finite_or_negative_strength("std", Noise::gaussian);
    assert!(Noise::gaussian(0.0).is_ok());
}

#[test]
fn bernoulli_p_must_lie_in_the_unit_interval() {
    for p in [
        -0.1,
        -f64::MIN_POSITIVE,
        1.0 + f64::EPSILON,
        2.0,
        f64::NAN,
        f64::INFINITY,
    ] {
        let e = error(Noise::bernoulli(p));
        assert!(
            matches!(e, Error::InvalidProbability { p: q } if q.to_bits() == p.to_bits()),
            "{e:?}"
        );
    }
    assert!(Noise::bernoulli(0.0).is_ok() && Noise::bernoulli(1.0).is_ok());
}

#[test]
fn hand_built_invalid_noise_is_refused_where_used() {
    let bad = Noise::Uniform { a: f64::NAN };
    assert!(matches!(
        error(bad.validate()),
        Error::InvalidStrength { .. }
    ));
    let e = error(SmoothOut::new(&b(), Config::new(bad), specs()));
    assert!(
        matches!(e, Error::InvalidStrength { name: "a", .. }),
        "{e:?}"
    );
    let mut out = [0.0f32; 4];
    let e = error(reference::fill_noise(
        smoothout::NoiseKey::from_seed(0),
        &Noise::Bernoulli { p: -1.0 },
        0,
        &mut out,
    ));
    assert!(matches!(e, Error::InvalidProbability { .. }), "{e:?}");
    let e = error(reference::drop_out(
        smoothout::NoiseKey::from_seed(0),
        1.5,
        0,
        &mut out,
    ));
    assert!(matches!(e, Error::InvalidProbability { .. }), "{e:?}");
}

#[test]
fn bernoulli_cannot_be_regenerated() {
    let config = Config::new(Noise::bernoulli(0.1).unwrap());
    assert_eq!(config.denoise, Denoise::Regenerate, "the default mode");
    for scaling in [Scaling::Fixed, Scaling::PerElement, Scaling::FilterNorm] {
        let config = config.with_scaling(scaling);
        assert!(matches!(
            error(config.validate()),
            Error::NotRegenerable { .. }
        ));
        let e = error(SmoothOut::new(&b(), config, specs()));
        assert!(
            matches!(e, Error::NotRegenerable { .. }),
            "{scaling:?}: {e:?}"
        );
        // The fix the message names works.
        assert!(SmoothOut::new(&b(), config.with_denoise(Denoise::Exact), specs()).is_ok());
    }
}

#[test]
fn per_element_gaussian_cannot_be_regenerated() {
    let config = Config::new(Noise::gaussian(0.01).unwrap()).with_scaling(Scaling::PerElement);
    let e = error(SmoothOut::new(&b(), config, specs()));
    assert!(matches!(e, Error::NotRegenerable { .. }), "{e:?}");
    assert!(SmoothOut::new(&b(), config.with_denoise(Denoise::Exact), specs()).is_ok());
    // Gaussian with the other scalings regenerates.
    assert!(config.with_scaling(Scaling::FilterNorm).validate().is_ok());
}

#[test]
fn per_element_uniform_needs_a_below_one() {
    for a in [1.0, 1.5] {
        let config = Config::new(Noise::uniform(a).unwrap()).with_scaling(Scaling::PerElement);
        let e = error(SmoothOut::new(&b(), config, specs()));
        assert!(matches!(e, Error::NotRegenerable { .. }), "a = {a}: {e:?}");
        assert!(config.with_denoise(Denoise::Off).validate().is_ok());
    }
    let below = Config::new(Noise::uniform(0.999).unwrap()).with_scaling(Scaling::PerElement);
    assert!(SmoothOut::new(&b(), below, specs()).is_ok());
}

/// Each of `values` is refused as the invalid setting `name` by the
/// checked constructor `checked`, and by [`SmoothOut::new`] when built by
/// hand (`raw`).
#[track_caller]
fn schedule_refuses<const N: usize>(
    name: &str,
    values: [f64; N],
    checked: fn(f64) -> Result<Schedule, Error>,
    raw: fn(f64) -> Schedule,
) {
    for value in values {
        let e = error(checked(value));
        assert!(invalid_setting(&e, name), "{e:?}");
        let config = Config::new(Noise::uniform(0.1).unwrap()).with_schedule(raw(value), 10);
        let e = error(SmoothOut::new(&b(), config, specs()));
        assert!(invalid_setting(&e, name), "{e:?}");
    }
}

#[test]
fn anneal_index_must_be_finite_and_non_negative() {
    schedule_refuses(
        "anneal index",
        NON_FINITE_OR_NEGATIVE,
        Schedule::anneal,
        |index| Schedule::Anneal { index },
    );
    assert!(Schedule::anneal(0.0).is_ok());
}

#[test]
fn tanh_scale_must_be_finite_and_positive() {
    schedule_refuses(
        "tanh scale",
        [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY],
        Schedule::tanh,
        |scale| Schedule::Tanh { scale },
    );
}

#[test]
fn tanh_needs_total_steps() {
    let tanh = Schedule::tanh(10.0).unwrap();
    let e = error(tanh.coefficient(0, 0));
    assert!(
        matches!(e, Error::InvalidSetting { value, .. } if value == 0.0),
        "{e:?}"
    );
    let config = Config::new(Noise::uniform(0.1).unwrap()).with_schedule(tanh, 0);
    let e = error(SmoothOut::new(&b(), config, specs()));
    assert!(matches!(e, Error::InvalidSetting { .. }), "{e:?}");
    assert!(SmoothOut::new(&b(), config.with_schedule(tanh, 1), specs()).is_ok());
}

#[test]
fn sgd_learning_rate_must_be_finite_and_non_negative() {
    for lr in NON_FINITE_OR_NEGATIVE {
        let e = error(Sgd::new(lr, 0.9, 0.0));
        assert!(invalid_setting(&e, "learning rate"), "{e:?}");
    }
}

#[test]
fn sgd_momentum_must_lie_in_zero_one() {
    for m in [-0.1, 1.0, 1.5, f64::NAN, f64::INFINITY] {
        let e = error(Sgd::new(0.1, m, 0.0));
        assert!(invalid_setting(&e, "momentum"), "{e:?}");
    }
    assert!(Sgd::new(0.1, 0.0, 0.0).is_ok());
}

#[test]
fn sgd_weight_decay_must_be_finite_and_non_negative() {
    for wd in NON_FINITE_OR_NEGATIVE {
        let e = error(Sgd::new(0.1, 0.9, wd));
        assert!(invalid_setting(&e, "weight decay"), "{e:?}");
    }
}

#[test]
fn hand_built_invalid_sgd_is_refused_by_the_update() {
    let bad = Sgd {
        lr: -1.0,
        momentum: 0.0,
        weight_decay: 0.0,
    };
    let (mut so, mut p) = perturbed_at(Draw::new(0, 0));
    let (g, mut v) = (params(), params());
    let e = error(so.denoise_sgd(&b(), &mut p, &g, &mut v, &bad, Draw::new(0, 0)));
    assert!(invalid_setting(&e, "learning rate"), "{e:?}");
    // Refused before anything changed: the draw is still applied and can be removed.
    assert_eq!(so.applied(), Some(Draw::new(0, 0)));
    so.denoise(&b(), &mut p, Draw::new(0, 0)).unwrap();
}

#[test]
fn objective_needs_at_least_one_copy() {
    let e = error(Objective::new(Noise::uniform(0.1).unwrap(), 0, 1));
    assert!(
        matches!(e, Error::InvalidSetting { name: "copies", .. }),
        "{e:?}"
    );
    let e = error(Objective::new(Noise::Gaussian { std: -1.0 }, 3, 1));
    assert!(matches!(e, Error::InvalidStrength { .. }), "{e:?}");
    assert!(Objective::new(Noise::uniform(0.1).unwrap(), 1, 1).is_ok());
}

#[test]
fn empty_spec_list_is_an_empty_parameter_set() {
    let e = error(SmoothOut::new(
        &b(),
        Config::new(Noise::uniform(0.1).unwrap()),
        vec![],
    ));
    assert!(matches!(e, Error::EmptyParameterSet), "{e:?}");
}

#[test]
fn no_perturbed_spec_is_an_empty_parameter_set() {
    let specs = vec![
        ParamSpec::normalization("bn.weight", 4),
        ParamSpec::weight("frozen", [2, 2]).with_perturbed(false),
    ];
    let e = error(SmoothOut::new(
        &b(),
        Config::new(Noise::uniform(0.1).unwrap()),
        specs.clone(),
    ));
    assert!(matches!(e, Error::EmptyParameterSet), "{e:?}");
    // One perturbed spec is enough.
    let mut specs = specs;
    specs[0] = specs[0].clone().with_perturbed(true);
    assert!(SmoothOut::new(&b(), Config::new(Noise::uniform(0.1).unwrap()), specs).is_ok());
}

#[test]
fn zero_sized_parameter_is_an_empty_parameter() {
    for shape in [vec![0usize], vec![4, 0, 3], vec![0, 5]] {
        let specs = vec![
            ParamSpec::weight("ok", [2, 2]),
            ParamSpec::weight("empty", &shape),
        ];
        let e = error(SmoothOut::new(
            &b(),
            Config::new(Noise::uniform(0.1).unwrap()),
            specs,
        ));
        assert!(
            matches!(e, Error::EmptyParameter { param: 1 }),
            "{shape:?}: {e:?}"
        );
    }
}

#[test]
fn wrong_number_of_buffers_is_a_length_mismatch() {
    let mut so = smoothout();
    for n in [0, 1, 3] {
        let mut p: Vec<Vec<f32>> = params().into_iter().cycle().take(n).collect();
        let e = error(so.perturb(&b(), &mut p, Draw::new(0, 0)));
        assert!(
            matches!(e, Error::LengthMismatch { expected: 2, actual, .. } if actual == n),
            "{n} buffers: {e:?}"
        );
        assert_eq!(so.applied(), None);
    }
    let e = error(
        so.step(&b(), &mut [vec![0.0f32; 12]], Draw::new(0, 0), |_| {
            Ok::<(), Error>(())
        }),
    );
    assert!(matches!(e, Error::LengthMismatch { .. }), "{e:?}");
}

#[test]
fn buffer_of_the_wrong_length_is_a_shape_mismatch() {
    let mut so = smoothout();
    let mut p = params();
    p[1].push(0.0);
    let before = p.clone();
    let e = error(so.perturb(&b(), &mut p, Draw::new(0, 0)));
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                param: 1,
                expected: 3,
                actual: 4
            }
        ),
        "{e:?}"
    );
    // Checked before anything was perturbed.
    assert_eq!(p, before);
    assert_eq!(so.applied(), None);
}

#[test]
fn perturbing_twice_is_already_perturbed() {
    let (mut so, mut p) = perturbed_at(Draw::new(0, 0));
    let perturbed = p.clone();
    for draw in [Draw::new(0, 0), Draw::new(0, 1)] {
        let e = error(so.perturb(&b(), &mut p, draw));
        assert!(matches!(e, Error::AlreadyPerturbed), "{e:?}");
    }
    assert_eq!(p, perturbed, "the second perturb added noise");
    assert_eq!(so.applied(), Some(Draw::new(0, 0)));
}

#[test]
fn denoising_unperturbed_parameters_is_not_perturbed() {
    let mut so = smoothout();
    let mut p = params();
    let e = error(so.denoise(&b(), &mut p, Draw::new(0, 0)));
    assert!(matches!(e, Error::NotPerturbed), "{e:?}");
    assert_eq!(p, params());
    let (g, mut v) = (params(), params());
    let sgd = Sgd::new(0.1, 0.0, 0.0).unwrap();
    let e = error(so.denoise_sgd(&b(), &mut p, &g, &mut v, &sgd, Draw::new(0, 0)));
    assert!(matches!(e, Error::NotPerturbed), "{e:?}");
    // After a complete step it is again not perturbed.
    so.perturb(&b(), &mut p, Draw::new(1, 0)).unwrap();
    so.denoise(&b(), &mut p, Draw::new(1, 0)).unwrap();
    let e = error(so.denoise(&b(), &mut p, Draw::new(1, 0)));
    assert!(matches!(e, Error::NotPerturbed), "{e:?}");
}

#[test]
fn denoising_another_draw_is_a_draw_mismatch() {
    let (mut so, mut p) = perturbed_at(Draw::new(4, 1));
    let perturbed = p.clone();
    for other in [Draw::new(4, 0), Draw::new(5, 1), Draw::new(0, 0)] {
        let e = error(so.denoise(&b(), &mut p, other));
        assert!(matches!(e, Error::DrawMismatch), "{other:?}: {e:?}");
    }
    assert_eq!(p, perturbed);
    // The right draw still de-noises.
    so.denoise(&b(), &mut p, Draw::new(4, 1)).unwrap();
    for (x, y) in p.iter().flatten().zip(params().iter().flatten()) {
        assert!((x - y).abs() <= 1e-6, "{x} vs {y}");
    }
}

#[test]
fn denoise_sgd_with_mismatched_gradients_is_an_error() {
    let (mut so, mut p) = perturbed_at(Draw::new(0, 0));
    let sgd = Sgd::new(0.1, 0.9, 0.0).unwrap();
    let mut v = params();
    let mut short = params();
    short[0].pop();
    let e = error(so.denoise_sgd(&b(), &mut p, &short, &mut v, &sgd, Draw::new(0, 0)));
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                param: 0,
                expected: 12,
                actual: 11
            }
        ),
        "{e:?}"
    );
    let e = error(so.denoise_sgd(&b(), &mut p, &params()[..1], &mut v, &sgd, Draw::new(0, 0)));
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{e:?}"
    );
    let e = error(so.denoise_sgd(&b(), &mut p, &params(), &mut short, &sgd, Draw::new(0, 0)));
    assert!(matches!(e, Error::ShapeMismatch { param: 0, .. }), "{e:?}");
    // Refused before the draw was consumed.
    assert_eq!(so.applied(), Some(Draw::new(0, 0)));
    so.denoise_sgd(&b(), &mut p, &params(), &mut v, &sgd, Draw::new(0, 0))
        .unwrap();

    // The plain-slice function refuses them too.
    let mut w = vec![0.0f32; 4];
    let mut v = vec![0.0f32; 4];
    let e = error(reference::denoise_sgd(
        None, 0, &mut w, &[0.0; 3], &mut v, &sgd,
    ));
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                expected: 4,
                actual: 3,
                ..
            }
        ),
        "{e:?}"
    );
    let e = error(reference::denoise_sgd(
        None,
        0,
        &mut w,
        &[0.0; 4],
        &mut [0.0; 5],
        &sgd,
    ));
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                expected: 4,
                actual: 5,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn sensitivity_grid_must_strictly_increase() {
    for grid in [[0.0, 0.2, 0.1], [0.1, 0.1, 0.2], [0.0, f64::NAN, 0.2]] {
        let (mut values, mut slopes) = ([0.0; 3], [0.0; 2]);
        let e = error(sensitivity_of_first(
            &grid,
            Unit::Uniform,
            &mut values,
            &mut slopes,
        ));
        assert!(invalid_setting(&e, "sharpness grid"), "{grid:?}: {e:?}");
    }
    // A negative strength in an increasing grid is an invalid strength.
    let (mut values, mut slopes) = ([0.0; 2], [0.0; 1]);
    let e = error(sensitivity_of_first(
        &[-0.2, 0.1],
        Unit::Gaussian,
        &mut values,
        &mut slopes,
    ));
    assert!(matches!(e, Error::InvalidStrength { .. }), "{e:?}");
    // And an increasing grid of valid strengths works.
    sensitivity_of_first(&[0.0, 0.1], Unit::Uniform, &mut values, &mut slopes).unwrap();
}

#[test]
fn sensitivity_output_lengths_must_match_the_grid() {
    // One value too many, then one slope too many.
    for (values, slopes) in [(3, 1), (2, 2)] {
        let e = error(sensitivity_of_first(
            &[0.0, 0.1],
            Unit::Uniform,
            &mut vec![0.0; values],
            &mut vec![0.0; slopes],
        ));
        assert!(matches!(e, Error::LengthMismatch { .. }), "{e:?}");
    }
}

/// The closure's error is returned, and the parameters are de-noised anyway,
/// for every de-noise mode that removes noise, and through `step_sgd`.
#[test]
fn step_denoises_even_when_the_closure_fails() {
    #[derive(Debug, PartialEq)]
    enum Failure {
        Backward,
        SmoothOut(Error),
    }
    impl From<Error> for Failure {
        fn from(e: Error) -> Self {
            Failure::SmoothOut(e)
        }
    }
    for denoise in [Denoise::Regenerate, Denoise::Exact] {
        for scaling in [Scaling::Fixed, Scaling::FilterNorm] {
            let config = Config::new(Noise::uniform(0.1).unwrap())
                .with_scaling(scaling)
                .with_denoise(denoise);
            let mut so = SmoothOut::new(&b(), config, specs()).unwrap();
            let mut p = params();
            let mut seen = None;
            let r = so.step(&b(), &mut p, Draw::new(0, 0), |q| {
                seen = Some(q.to_vec());
                Err::<(), Failure>(Failure::Backward)
            });
            assert_eq!(r, Err(Failure::Backward));
            assert_ne!(
                seen.as_ref(),
                Some(&params()),
                "the closure saw unperturbed parameters"
            );
            assert_eq!(
                so.applied(),
                None,
                "{denoise:?} {scaling:?}: left perturbed"
            );
            for (x, y) in p.iter().flatten().zip(params().iter().flatten()) {
                match denoise {
                    Denoise::Exact => assert_eq!(x.to_bits(), y.to_bits()),
                    _ => assert!((x - y).abs() <= 1e-6, "{denoise:?} {scaling:?}: {x} vs {y}"),
                }
            }

            // step_sgd: de-noised, not updated.
            let (mut g, mut v) = (params(), vec![vec![0.0; 12], vec![0.0; 3]]);
            let sgd = Sgd::new(1.0, 0.0, 0.0).unwrap();
            let before = p.clone();
            let r = so.step_sgd(
                &b(),
                &mut p,
                &mut g,
                &mut v,
                &sgd,
                Draw::new(1, 0),
                |_, _| Err::<(), Failure>(Failure::Backward),
            );
            assert_eq!(r, Err(Failure::Backward));
            assert_eq!(so.applied(), None);
            assert!(v.iter().flatten().all(|&x| x == 0.0), "the update ran");
            for (x, y) in p.iter().flatten().zip(before.iter().flatten()) {
                assert!((x - y).abs() <= 1e-6, "{denoise:?} {scaling:?}: {x} vs {y}");
            }
        }
    }
}
