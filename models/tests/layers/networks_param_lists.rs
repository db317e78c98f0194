//! `Layer::params_and_grads_mut` lends the very buffers `params()` and
//! `grads()` list, in the same (spec) order, for every network: checked by
//! address and by writing through the split borrow and reading back.

use smoothout::Reference;
use smoothout_models::layers::Layer;
use smoothout_models::networks::{c1, f1, mlp, resnet_cifar, NetConfig, Sequential};

type B = Reference<f32>;

fn addrs<T>(v: &[&T]) -> Vec<*const T> {
    v.iter().map(|r| *r as *const T).collect()
}

fn addrs_mut<T>(v: &[&mut T]) -> Vec<*const T> {
    v.iter().map(|r| &**r as *const T).collect()
}

/// Same buffers, same order, as params()/grads() and params_mut()/grads_mut();
/// writes through the split borrow land where params()/grads() read.
fn check(name: &str, mut net: Sequential<B>) {
    let specs = net.specs();
    let params = addrs(&net.params());
    let grads = addrs(&net.grads());
    assert_eq!(params.len(), specs.len(), "{name}: one parameter per spec");
    assert_eq!(grads.len(), specs.len(), "{name}: one gradient per spec");
    assert_eq!(addrs_mut(&net.params_mut()), params, "{name}: params_mut");
    assert_eq!(addrs_mut(&net.grads_mut()), grads, "{name}: grads_mut");

    let (p, g) = net.params_and_grads_mut();
    assert_eq!(
        addrs_mut(&p),
        params,
        "{name}: parameters of the split borrow"
    );
    assert_eq!(
        addrs_mut(&g),
        grads,
        "{name}: gradients of the split borrow"
    );
    for (i, ((p, g), s)) in p.into_iter().zip(g).zip(&specs).enumerate() {
        assert_eq!(p.len(), s.len(), "{name}: parameter {} length", s.name);
        assert_eq!(g.len(), s.len(), "{name}: gradient {} length", s.name);
        p.fill(i as f32);
        g.fill(-(i as f32) - 0.5);
    }
    for (i, ((p, g), s)) in net
        .params()
        .into_iter()
        .zip(net.grads())
        .zip(&specs)
        .enumerate()
    {
        assert!(
            p.iter().all(|&x| x == i as f32),
            "{name}: {} written",
            s.name
        );
        assert!(
            g.iter().all(|&x| x == -(i as f32) - 0.5),
            "{name}: gradient of {} written",
            s.name
        );
    }
}

#[test]
fn f1_lists_line_up() {
    check("F1", f1(&B::new(), NetConfig::seeded(1)).unwrap());
}

#[test]
fn c1_lists_line_up() {
    // C1's convs and hidden Linears have no bias (the take(1) wrapper).
    check("C1", c1(&B::new(), NetConfig::seeded(2)).unwrap());
}

#[test]
fn resnet_lists_line_up() {
    // ResNet-44's structure in its smallest depth (one block per stage,
    // projections included), then ResNet-44 itself.
    check(
        "ResNet-8",
        resnet_cifar(&B::new(), 8, 10, NetConfig::seeded(3)).unwrap(),
    );
    check(
        "ResNet-44",
        resnet_cifar(&B::new(), 44, 10, NetConfig::seeded(3)).unwrap(),
    );
}

#[test]
fn mlp_lists_line_up() {
    let b = B::new();
    check(
        "mlp",
        mlp(&b, NetConfig::seeded(4), 64, &[32, 16], 10).unwrap(),
    );
    check(
        "mlp without hidden layers",
        mlp(&b, NetConfig::seeded(5), 64, &[], 10).unwrap(),
    );
}
