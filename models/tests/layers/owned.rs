//! `Layer::forward_owned` gives what `Layer::forward` gives, bit for bit,
//! and leaves the same cache behind: the outputs, then the input gradient,
//! the parameter gradients and the running statistics after a backward
//! pass, for every layer kind that implements it, BatchNorm with ghost
//! batches (partly through `forward`) and a residual block (through the
//! provided method), with and without an eval-mode forward before the
//! backward pass (which must leave the cache as `forward` leaves it).

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
/// other through `forward_owned`: train-mode forwards at batch 4 and then
/// 3 (so that kept buffers of the wrong length get replaced), then (with
/// `eval_between`) an eval-mode forward of other data, then a backward
/// pass; every output, gradient, parameter gradient and running statistic
/// compared bit for bit.
fn same_as_forward(what: &str, make: &dyn Fn(&B) -> Box<dyn Layer<B>>, image: [usize; 3]) {
    let b = B::with_threads(2).unwrap();
    for eval_between in [false, true] {
        let ctx = format!("{what}, eval forward between: {eval_between}");
        let (mut lent, mut given) = (make(&b), make(&b));
        let mut forward = |n: usize, seed: u64, train: bool| {
            let shape = [n, image[0], image[1], image[2]];
            let x = data(shape.iter().product(), seed);
            let y1 = lent
                .forward(&b, &Activation::new(upload(&b, &x), shape), train)
                .unwrap();
            let y2 = given
                .forward_owned(&b, Activation::new(upload(&b, &x), shape), train)
                .unwrap();
            assert_eq!(y1.shape, y2.shape, "{ctx}");
            assert_eq!(host(&b, &y1.data), host(&b, &y2.data), "{ctx}: output");
            b.len(&y1.data)
        };
        forward(4, 1, true);
        let out = forward(3, 2, true);
        if eval_between {
            forward(3, 3, false);
        }
        let dy = upload(&b, &data(out, 4));
        let (dx1, dx2) = match (lent.backward(&b, &dy), given.backward(&b, &dy)) {
            (Ok(dx1), Ok(dx2)) => (dx1, dx2),
            // BatchNorm's eval forward drops the batch's cache either way.
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
        for ((_, s1), (_, s2)) in lent.buffers().into_iter().zip(given.buffers()) {
            assert_eq!(host(&b, s1), host(&b, s2), "{ctx}: running statistic");
        }
    }
}

#[test]
fn forward_owned_is_forward_bit_for_bit() {
    let image = [3, 6, 6];
    same_as_forward(
        "linear",
        &|b| Box::new(Linear::new(b, 108, 5, 7).unwrap()),
        image,
    );
    same_as_forward(
        "conv",
        &|b| Box::new(Conv2d::new(b, 3, 4, 3, 1, 1, 7).unwrap()),
        image,
    );
    same_as_forward("relu", &|_| Box::new(Relu::new()), image);
    same_as_forward("max pool", &|_| Box::new(MaxPool2d::new(3, 2, 1)), image);
    same_as_forward("avg pool", &|_| Box::new(AvgPool2d::new(2, 2, 0)), image);
    same_as_forward(
        "dropout",
        &|_| Box::new(Dropout::new(0.5, 9).unwrap()),
        image,
    );
    same_as_forward(
        "batch norm",
        &|b| Box::new(BatchNorm::new(b, 3).unwrap()),
        image,
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
        image,
    );
    same_as_forward(
        "residual block",
        &|b| Box::new(BasicBlock::new(b, 3, 4, 2, 7).unwrap()),
        image,
    );
}
