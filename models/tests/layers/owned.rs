//! `Layer::forward_owned` gives what `Layer::forward` gives, bit for bit,
//! and leaves the same cache behind: the output, then the input gradient
//! and the parameter gradients of a backward pass, for every layer kind
//! that implements it (and BatchNorm and a residual block through the
//! provided method), in train mode and after an eval-mode forward, which
//! must not touch the cache.

use smoothout::{BackendTypes, BufferOps};
use smoothout_cpu::Cpu;
use smoothout_models::layers::{
    Activation, AvgPool2d, BasicBlock, BatchNorm, Conv2d, Dropout, Layer, Linear, MaxPool2d, Relu,
};

use crate::support::layers::data;

type B = Cpu<f32>;

fn upload(b: &B, v: &[f64]) -> <B as BackendTypes>::Buffer {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    b.upload(&v).unwrap()
}

fn host(b: &B, buf: &<B as BackendTypes>::Buffer) -> Vec<u32> {
    b.to_vec(buf).unwrap().iter().map(|x| x.to_bits()).collect()
}

/// Two copies of a layer (`make` twice), one fed through `forward`, the
/// other through `forward_owned`: a train-mode forward, then (with
/// `eval_between`) an eval-mode forward of other data, then a backward
/// pass; every output, gradient and parameter gradient compared bit for
/// bit.
fn same_as_forward(what: &str, make: &dyn Fn(&B) -> Box<dyn Layer<B>>, shape: &[usize]) {
    let b = B::with_threads(2).unwrap();
    let len: usize = shape.iter().product();
    for eval_between in [false, true] {
        let (mut lent, mut given) = (make(&b), make(&b));
        let x = data(len, 1);
        let y1 = lent
            .forward(&b, &Activation::new(upload(&b, &x), shape), true)
            .unwrap();
        let y2 = given
            .forward_owned(&b, Activation::new(upload(&b, &x), shape), true)
            .unwrap();
        assert_eq!(y1.shape, y2.shape, "{what}");
        assert_eq!(host(&b, &y1.data), host(&b, &y2.data), "{what}: output");
        if eval_between {
            let other = data(len, 2);
            let e1 = lent
                .forward(&b, &Activation::new(upload(&b, &other), shape), false)
                .unwrap();
            let e2 = given
                .forward_owned(&b, Activation::new(upload(&b, &other), shape), false)
                .unwrap();
            assert_eq!(
                host(&b, &e1.data),
                host(&b, &e2.data),
                "{what}: eval output"
            );
        }
        let dy = upload(&b, &data(b.len(&y1.data), 3));
        let ctx = format!("{what}, eval forward between: {eval_between}");
        let (dx1, dx2) = match (lent.backward(&b, &dy), given.backward(&b, &dy)) {
            (Ok(dx1), Ok(dx2)) => (dx1, dx2),
            // BatchNorm's eval forward drops the cache either way.
            (Err(e1), Err(e2)) => {
                assert_eq!(format!("{e1:?}"), format!("{e2:?}"), "{ctx}");
                continue;
            }
            (r1, r2) => panic!("{ctx}: {:?} against {:?}", r1.is_ok(), r2.is_ok()),
        };
        assert_eq!(host(&b, &dx1), host(&b, &dx2), "{ctx}: input gradient");
        for (g1, g2) in lent.grads().into_iter().zip(given.grads()) {
            assert_eq!(host(&b, g1), host(&b, g2), "{ctx}: parameter gradient");
        }
    }
}

#[test]
fn forward_owned_is_forward_bit_for_bit() {
    let nchw = [4, 3, 6, 6];
    same_as_forward(
        "linear",
        &|b| Box::new(Linear::new(b, 108, 5, 7).unwrap()),
        &nchw,
    );
    same_as_forward(
        "conv",
        &|b| Box::new(Conv2d::new(b, 3, 4, 3, 1, 1, 7).unwrap()),
        &nchw,
    );
    same_as_forward("relu", &|_| Box::new(Relu::new()), &nchw);
    same_as_forward("max pool", &|_| Box::new(MaxPool2d::new(3, 2, 1)), &nchw);
    same_as_forward("avg pool", &|_| Box::new(AvgPool2d::new(2, 2, 0)), &nchw);
    same_as_forward(
        "dropout",
        &|_| Box::new(Dropout::new(0.5, 9).unwrap()),
        &nchw,
    );
    same_as_forward(
        "batch norm",
        &|b| Box::new(BatchNorm::new(b, 3).unwrap()),
        &nchw,
    );
    same_as_forward(
        "batch norm, ghost batches of 3",
        &|b| {
            Box::new(
                BatchNorm::new(b, 3)
                    .unwrap()
                    .with_ghost_batch(Some(3))
                    .unwrap(),
            )
        },
        &nchw,
    );
    same_as_forward(
        "residual block",
        &|b| Box::new(BasicBlock::new(b, 3, 4, 2, 7).unwrap()),
        &nchw,
    );
}
