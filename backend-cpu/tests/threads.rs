//! The thread limit of `Cpu::with_threads` (issue 11, point 1: a count
//! such as 100 000 spawned threads until the system stopped it).

use smoothout_cpu::{
    check_threads, max_threads, Cpu, CpuError, MIN_THREAD_LIMIT, THREADS_PER_CORE,
};

#[test]
fn the_limit_is_a_small_multiple_of_the_cores() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(
        max_threads(),
        (THREADS_PER_CORE * cores).max(MIN_THREAD_LIMIT)
    );
}

#[test]
fn above_the_limit_is_a_typed_error_before_any_thread_starts() {
    let max = max_threads();
    for asked in [max + 1, 100_000, usize::MAX] {
        match Cpu::<f32>::with_threads(asked) {
            Err(CpuError::TooManyThreads { requested, max: m }) => {
                assert_eq!((requested, m), (asked, max));
            }
            other => panic!("{asked} threads: expected TooManyThreads, got {other:?}"),
        }
        assert!(Cpu::<f64>::with_threads(asked).is_err());
        let msg = check_threads(asked).unwrap_err().to_string();
        assert!(
            msg.contains(&asked.to_string())
                && msg.contains(&format!("at most {max}"))
                && msg.contains("0 for one per core"),
            "{msg}"
        );
    }
}

#[test]
fn up_to_the_limit_starts() {
    assert!(check_threads(0).is_ok() && check_threads(max_threads()).is_ok());
    assert_eq!(Cpu::<f32>::with_threads(3).unwrap().threads(), 3);
    assert_eq!(
        Cpu::<f32>::with_threads(max_threads()).unwrap().threads(),
        max_threads()
    );
}
