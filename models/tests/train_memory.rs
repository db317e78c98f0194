//! The memory estimate checked before a run allocates (issue 11, points 2
//! and 5): exact parameter counts, activations within 25% of what a
//! training step really allocates, and refusals — never an abort — for
//! sizes from `--net` or from a checkpoint's metadata.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use smoothout::Reference;
use smoothout_models::data::Dataset;
use smoothout_models::layers::{Activation, Layer};
use smoothout_models::train::{
    available_memory, network_from_checkpoint, Checkpoint, Method, Network, TrainConfig,
    TrainError, Trainer,
};

/// Counts the bytes the current thread holds, and its peak: the
/// measurements run on the single-threaded reference backend, and other
/// tests' threads do not disturb them.
struct Counting;

thread_local! {
    static HELD: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    // `try_with`: nothing to count while a thread's locals are torn down.
    let _ = HELD.try_with(|h| {
        let now = h.get() + delta;
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The peak of bytes held above the start while `f` runs.
fn peak_of(f: impl FnOnce()) -> u64 {
    let start = HELD.with(Cell::get);
    PEAK.with(|p| p.set(start));
    f();
    (PEAK.with(Cell::get) - start) as u64
}

/// The networks compared, with an input shape and classes they take.
fn cases() -> Vec<(Network, [usize; 3], usize)> {
    vec![
        (Network::Mlp(vec![64, 64]), [1, 8, 8], 10),
        (Network::Mlp(vec![7, 3, 5]), [3, 5, 4], 4),
        (Network::F1, [1, 28, 28], 10),
        (Network::CifarShallow, [3, 32, 32], 10),
        (Network::CifarShallow, [3, 32, 32], 100),
        (Network::ResNet44, [3, 32, 32], 10),
        (Network::ResNet18, [3, 32, 32], 10),
    ]
}

#[test]
fn parameter_and_buffer_counts_are_exact() {
    let b = Reference::<f32>::new();
    for (net, shape, classes) in cases() {
        let f = net.footprint(shape, classes).unwrap();
        let built = net.build(&b, 0, shape, classes).unwrap();
        let buffers: usize = built.buffers().iter().map(|(_, v)| v.len()).sum();
        assert_eq!(
            (f.parameters, f.buffers),
            (built.num_params() as u64, buffers as u64),
            "{}",
            net.name()
        );
    }
    // The published figures (networks/mod.rs).
    let params = |n: Network, classes| n.footprint([3, 32, 32], classes).unwrap().parameters;
    assert_eq!(params(Network::ResNet18, 10), 11_173_962);
    assert_eq!(params(Network::ResNet44, 10), 661_338);
    assert_eq!(params(Network::CifarShallow, 100), 1_405_860);
}

/// A training step's activations (forward in train mode, backward) lie
/// within 25% of the estimate, either way.
#[test]
fn activations_are_within_a_factor_two() {
    let b = Reference::<f32>::new();
    for (net, shape, classes) in cases() {
        // Small batches of the convolutional networks: the reference
        // backend is slow in debug builds.
        let n = if matches!(net, Network::Mlp(_) | Network::F1) {
            64
        } else {
            2
        };
        if net == Network::ResNet18 {
            continue; // as ResNet-44, at ten times the time
        }
        let f = net.footprint(shape, classes).unwrap();
        let estimate = n as u64 * (f.cached_per_example + f.working_per_example) * 4;
        let mut built = net.build(&b, 0, shape, classes).unwrap();
        let len: usize = shape.iter().product();
        let x = vec![0.25f32; n * len];
        let mut in_shape = vec![n];
        in_shape.extend_from_slice(&shape);
        let x = Activation::new(x, in_shape);
        let measured = peak_of(|| {
            let logits = built.forward(&b, &x, true).unwrap().data;
            let dy = vec![0.01f32; logits.len()];
            built.backward(&b, &dy).unwrap();
        });
        let ratio = measured as f64 / estimate as f64;
        eprintln!("{}: measured / estimated = {ratio:.2}", net.name());
        assert!(
            (0.8..=1.25).contains(&ratio),
            "{} at batch {n}: measured {measured} bytes, estimated {estimate} (ratio {ratio:.2})",
            net.name()
        );
    }
}

fn digits() -> Dataset {
    Dataset::digits_embedded()
        .shuffled_split(360, 0)
        .unwrap()
        .train
}

/// `--net mlp-999999999` on the digits: about 0.7 TiB, refused with the
/// estimate, the available memory and what to reduce (it aborted the
/// process: "memory allocation of 255999999744 bytes failed").
#[test]
fn a_huge_network_is_refused_before_allocating() {
    let cfg = TrainConfig::new(Method::AdaSmoothOut, Network::Mlp(vec![999_999_999]));
    let err = Trainer::new(Reference::<f32>::new(), cfg, &digits()).unwrap_err();
    let TrainError::Memory {
        needed: Some(needed),
        available,
        ..
    } = &err
    else {
        panic!("expected TrainError::Memory, got {err:?}");
    };
    assert!(*needed > 3 * 256_000_000_000 && needed > available);
    let msg = err.to_string();
    for want in ["mlp-999999999", "needs about", "TiB", "available", "--net"] {
        assert!(msg.contains(want), "`{want}` not in: {msg}");
    }
    if available_memory().is_some() {
        assert!(msg.contains("MemAvailable"), "{msg}");
    }
}

/// Widths whose product overflows 64 bits: a refusal, not an overflow
/// panic.
#[test]
fn sizes_that_overflow_are_refused() {
    for hidden in [
        vec![usize::MAX],
        vec![1 << 32, 1 << 32],
        vec![usize::MAX, 1],
    ] {
        let net = Network::Mlp(hidden);
        assert!(net.footprint([1, 8, 8], 10).is_none(), "{}", net.name());
        let cfg = TrainConfig::new(Method::Baseline, net);
        let err = Trainer::new(Reference::<f32>::new(), cfg, &digits()).unwrap_err();
        assert!(
            matches!(err, TrainError::Memory { needed: None, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("more than 2^64 bytes"), "{err}");
    }
    // Network::build checks its own arithmetic too.
    let b = Reference::<f32>::new();
    assert!(Network::Mlp(vec![2])
        .build(&b, 0, [usize::MAX, 2, 1], 10)
        .is_err());
}

/// A batch larger than the data is the data: no refusal for `--batch
/// 18446744073709551615` on a small set.
#[test]
fn the_batch_counts_only_up_to_the_data() {
    let cfg = TrainConfig::new(Method::Baseline, Network::Mlp(vec![16])).with_batch(usize::MAX);
    let data = digits();
    let m = cfg.memory([1, 8, 8], 10, data.len(), 4).unwrap();
    assert!(m.total().unwrap() < 64 << 20, "{m:?}");
    assert!(Trainer::new(Reference::<f32>::new(), cfg, &data).is_ok());
}

/// A real checkpoint of a small run.
fn small_checkpoint() -> Checkpoint {
    let cfg = TrainConfig::new(Method::Baseline, Network::Mlp(vec![16])).with_batch(128);
    let data = digits();
    let mut t = Trainer::new(Reference::<f32>::new(), cfg, &data).unwrap();
    t.step(&data).unwrap();
    t.checkpoint().unwrap()
}

/// Hand-edited metadata of a checkpoint (point 5): a typed error naming
/// the file and the metadata, never an abort.
#[test]
fn edited_checkpoint_metadata_is_refused() {
    let b = Reference::<f32>::new();
    let path = Path::new("runs/x/checkpoint.safetensors");
    let good = small_checkpoint();
    assert!(network_from_checkpoint(&b, &good, path).is_ok());
    let edited = |key: &str, value: &str| {
        let mut c = good.clone();
        c.metadata.insert(key.into(), value.into());
        network_from_checkpoint(&b, &c, path).map(|_| ())
    };
    // Too large for memory, or for 64 bits.
    for (key, value) in [
        ("image_shape", "[1000000, 1000000, 1]"),
        ("network", "mlp-999999999"),
        ("classes", "1000000000000"),
        (
            "image_shape",
            "[18446744073709551615, 18446744073709551615, 1]",
        ),
        ("network", "mlp-18446744073709551615"),
    ] {
        let err = edited(key, value).unwrap_err();
        assert!(
            matches!(err, TrainError::Memory { .. }),
            "{key} = {value}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("checkpoint.safetensors") && msg.contains("metadata"),
            "{msg}"
        );
    }
    // Small enough to build, but not the network of the tensors: found
    // before building.
    for (key, value) in [
        ("network", "mlp-100000"),
        ("image_shape", "[1, 80, 80]"),
        ("classes", "11"),
    ] {
        let err = edited(key, value).unwrap_err();
        assert!(
            matches!(&err, TrainError::Checkpoint { reason, .. } if reason.contains("does not fit the tensors")),
            "{key} = {value}: {err:?}"
        );
    }
}
