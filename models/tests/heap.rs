//! A steady training step on the CPU backend (`Trainer::step_batch`, and
//! `Trainer::step` inside an epoch, after warm-up) makes no heap allocation
//! at all, counted by a global allocator over every thread: not only no
//! buffer (`train/recycle.rs` checks those) but no list, shape or queue
//! either. One test in its own binary, so that no other test's allocations
//! are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use smoothout_cpu::Cpu;
use smoothout_models::data::Dataset;
use smoothout_models::train::{Method, Network, TrainConfig, Trainer};

#[macro_use]
#[path = "support/mod.rs"]
mod support;
use support::steady::warmed_up;

/// Allocations (and reallocations) so far, over every thread.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// A trainer kept alive until every case is measured: a dropped backend's
/// threads exit some time later, and a thread's exit allocates (its
/// work-stealing state handing back what it holds), which on a loaded
/// machine can fall inside the next case's steps.
type Alive = Vec<Trainer<Cpu<f32>>>;

/// The heap allocations of three steps of `cfg` at batch `batch`, after
/// two to warm up, on a fixed batch of `shape`d inputs.
fn allocations_in_steady_steps(
    cfg: TrainConfig,
    shape: [usize; 3],
    batch: usize,
    alive: &mut Alive,
) -> u64 {
    let (mut t, x, y) = warmed_up(cfg, shape, batch);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..3 {
        t.step_batch(&x, &y).unwrap();
    }
    let n = ALLOCATIONS.load(Ordering::Relaxed) - before;
    alive.push(t);
    n
}

/// The heap allocations of three `Trainer::step`s over a dataset of six
/// batches of 12 images, after two to warm up: all inside one epoch (a new
/// epoch draws a new order of the examples).
fn allocations_in_steady_program_steps(method: Method, alive: &mut Alive) -> u64 {
    let (shape, batch) = ([1, 6, 6], 12);
    let n = 6 * batch;
    let pixels: Vec<u8> = (0..n * 36).map(|i| (i * 37 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let train = Dataset::new(pixels, labels, shape, 10, 255).unwrap();
    let cfg = TrainConfig::new(method, Network::Mlp(vec![16, 12]))
        .with_batch(batch)
        .with_epochs(2);
    let mut t = Trainer::new(Cpu::<f32>::with_threads(2).unwrap(), cfg, &train).unwrap();
    for _ in 0..2 {
        t.step(&train).unwrap();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..3 {
        t.step(&train).unwrap();
    }
    let n = ALLOCATIONS.load(Ordering::Relaxed) - before;
    alive.push(t);
    n
}

#[test]
fn a_steady_step_makes_no_heap_allocation() {
    let mut alive = Alive::new();
    for method in [Method::Baseline, Method::SmoothOut, Method::AdaSmoothOut] {
        let n = allocations_in_steady_program_steps(method, &mut alive);
        assert_eq!(
            n, 0,
            "Trainer::step, {method:?}: heap allocations in three steps"
        );
    }
    let cases = [
        (Network::Mlp(vec![16, 12]), Method::Baseline, [1, 6, 6], 12),
        (Network::Mlp(vec![16, 12]), Method::SmoothOut, [1, 6, 6], 12),
        (
            Network::Mlp(vec![16, 12]),
            Method::AdaSmoothOut,
            [1, 6, 6],
            12,
        ),
        (Network::CifarShallow, Method::AdaSmoothOut, [3, 32, 32], 2),
        (Network::ResNet44, Method::SmoothOut, [3, 32, 32], 2),
    ];
    for (net, method, shape, batch) in cases {
        let cfg = TrainConfig::new(method, net.clone());
        let n = allocations_in_steady_steps(cfg, shape, batch, &mut alive);
        assert_eq!(
            n,
            0,
            "{} {method:?}: heap allocations in three steps",
            net.name()
        );
    }
}
