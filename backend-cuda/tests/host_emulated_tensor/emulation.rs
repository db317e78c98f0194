//! The block emulation itself: it catches races and divergence.

use super::*;

#[test]
fn block_emulation_catches_races_and_divergence() {
    let Some(emu) = emu_or_skip() else { return };
    // 256 values whose sum depends on which are added.
    let input: Vec<f64> = (0..256).map(|i| 1.0 + f64::from(i) * 0.5).collect();
    let run = |which: i32, order: i32| -> (Option<String>, f64) {
        let mut out = [f64::NAN];
        // SAFETY: input holds the 256 doubles the self-test kernels read,
        // out the one they write.
        let status = unsafe { (emu.selftest)(which, order, input.as_ptr(), out.as_mut_ptr()) };
        (status_message(status), out[0])
    };
    let exact: f64 = input.iter().sum();
    // With the barrier: the exact sum in every order.
    for order in [ASCENDING, DESCENDING, SHUFFLED] {
        let (err, sum) = run(1, order);
        assert_eq!(err, None);
        assert_eq!(sum, exact, "synced sum, order {order}");
    }
    // Without it: the orders disagree (a stale shared value is read).
    let racy: Vec<f64> = [ASCENDING, DESCENDING, SHUFFLED]
        .into_iter()
        .map(|order| {
            let (err, sum) = run(0, order);
            assert_eq!(err, None);
            sum
        })
        .collect();
    assert!(
        racy.iter().any(|&s| s != exact),
        "a missing __syncthreads went unnoticed: {racy:?}"
    );
    // Threads at different barriers, or returning while others wait.
    let (err, _) = run(2, ASCENDING);
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("different __syncthreads")),
        "{err:?}"
    );
    let (err, _) = run(3, ASCENDING);
    assert!(
        err.as_deref().is_some_and(|e| e.contains("returned")),
        "{err:?}"
    );
    eprintln!("block emulation: races and divergent barriers are reported ({racy:?} vs {exact})");
}
