//! The kernels' shared device functions (Philox, the uniform and Gaussian
//! unit draws with their ports of libm's `logf` and `sincosf`), compiled for
//! the host by the system C compiler with multiply-add contraction off,
//! reproduce core's bits — checked here, without a GPU.
//!
//! `kernels/common.cuh` is plain C outside CUDA. NVRTC compiles it with
//! `--fmad=false`; both then round every IEEE operation the same way, so
//! agreement here means the device computes the same bits (what the GPU
//! tests in `noise.rs` confirm on a device). Skips with a reason when no C
//! compiler (`cc`) is installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use smoothout::unit::{gaussian_from_words, unit_at, Unit};
use smoothout::NoiseKey;

#[path = "support/compile.rs"]
mod compile;
use compile::compile;

const DRIVER: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include "common.cuh"

/* FNV-1a over 32-bit words, chunk by chunk. */
static unsigned long long fnv(unsigned long long h, unsigned int x) {
    for (int i = 0; i < 4; ++i) { h ^= (x >> (8 * i)) & 0xff; h *= 0x100000001b3ull; }
    return h;
}

int main(int argc, char **argv) {
    if (argc == 5) {
        /* draws k0 k1 start count: uniform and Gaussian bits of each index */
        u32 k0 = (u32)strtoul(argv[1], 0, 10), k1 = (u32)strtoul(argv[2], 0, 10);
        u64 start = strtoull(argv[3], 0, 10), count = strtoull(argv[4], 0, 10);
        for (u64 i = start; i < start + count; ++i)
            printf("%08x %08x\n", SO_BITS(so_unit_at(i, k0, k1, SO_UNIFORM)),
                   SO_BITS(so_unit_at(i, k0, k1, SO_GAUSSIAN)));
        return 0;
    }
    /* every possible Box-Muller input: logf of u1 and sincosf of 2pi*u2 for
       all 2^24 values of the top 24 bits, one checksum per 2^16 values */
    for (u32 chunk = 0; chunk < 256; ++chunk) {
        unsigned long long h = 0xcbf29ce484222325ull;
        for (u32 j = 0; j < 65536; ++j) {
            u32 k = chunk * 65536 + j;
            float u1 = (float)(k + 1u) * 5.9604644775390625e-08f;
            float phi = 6.28318530717958647692f * ((float)k * 5.9604644775390625e-08f);
            float s, c;
            so_sincosf(phi, &s, &c);
            h = fnv(h, SO_BITS(so_logf(u1)));
            h = fnv(h, SO_BITS(s));
            h = fnv(h, SO_BITS(c));
        }
        printf("%016llx\n", h);
    }
    return 0;
}
"#;

fn fnv(mut h: u64, x: u32) -> u64 {
    for i in 0..4 {
        h ^= u64::from((x >> (8 * i)) & 0xff);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The driver, built once per test process (the tests run in parallel),
/// or why there is none.
fn driver() -> Result<PathBuf, String> {
    static DRIVER_EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DRIVER_EXE.get_or_init(build_driver).clone()
}

/// The driver, or `None` after printing why the test is skipped.
fn driver_or_skip() -> Option<PathBuf> {
    driver().map_err(|why| eprintln!("skipped: {why}")).ok()
}

fn build_driver() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-device-functions");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = dir.join("driver.c");
    std::fs::write(&src, DRIVER).map_err(|e| e.to_string())?;
    let exe = dir.join("driver");
    let kernels = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    compile(
        Command::new("cc")
            .args([
                "-std=c99",
                "-O2",
                "-ffp-contract=off",
                "-fno-fast-math",
                "-I",
            ])
            .arg(&kernels)
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .arg("-lm"),
        "C",
        "kernels/common.cuh does not compile as C",
    )?;
    Ok(exe)
}

fn run(exe: &Path, args: &[String]) -> String {
    let out = Command::new(exe)
        .args(args)
        .output()
        .expect("run the driver");
    assert!(out.status.success(), "driver failed: {out:?}");
    String::from_utf8(out.stdout).expect("ASCII output")
}

#[test]
fn unit_draws_match_core_bit_for_bit() {
    let Some(exe) = driver_or_skip() else {
        return;
    };
    let keys = [
        NoiseKey::for_draw(0, 0, 0, 0),
        NoiseKey::for_draw(7, 1234, 1, 3),
        NoiseKey::from_seed(u64::MAX),
    ];
    // Starts at 0, inside the low counter word, and across the 2^32-block
    // boundary where the counter's high word becomes 1.
    let ranges = [(0u64, 4099u64), (1_000_001, 515), ((1u64 << 34) - 130, 260)];
    let mut compared = 0;
    for key in keys {
        for &(start, count) in &ranges {
            let args = [key.0[0], key.0[1]]
                .iter()
                .map(u32::to_string)
                .chain([start.to_string(), count.to_string()])
                .collect::<Vec<_>>();
            let text = run(&exe, &args);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len() as u64, count);
            for (j, line) in lines.iter().enumerate() {
                let i = start + j as u64;
                let (u, g) = line.split_once(' ').expect("two words");
                let u = u32::from_str_radix(u, 16).unwrap();
                let g = u32::from_str_radix(g, 16).unwrap();
                assert_eq!(
                    u,
                    unit_at(key, Unit::Uniform, i).to_bits(),
                    "uniform, key {key:?}, index {i}"
                );
                assert_eq!(
                    g,
                    unit_at(key, Unit::Gaussian, i).to_bits(),
                    "gaussian, key {key:?}, index {i}"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 3 * (4099 + 515 + 260));
}

#[test]
fn ported_logf_and_sincosf_match_libm_on_every_box_muller_input() {
    let Some(exe) = driver_or_skip() else {
        return;
    };
    let text = run(&exe, &[]);
    let got: Vec<u64> = text
        .lines()
        .map(|l| u64::from_str_radix(l, 16).unwrap())
        .collect();
    assert_eq!(got.len(), 256);
    for (chunk, &g) in got.iter().enumerate() {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for j in 0..65_536u32 {
            let k = chunk as u32 * 65_536 + j;
            let u1 = (k + 1) as f32 * (1.0 / 16_777_216.0);
            let phi = core::f32::consts::TAU * (k as f32 * (1.0 / 16_777_216.0));
            let (s, c) = libm::sincosf(phi);
            h = fnv(h, libm::logf(u1).to_bits());
            h = fnv(h, s.to_bits());
            h = fnv(h, c.to_bits());
        }
        assert_eq!(
            g,
            h,
            "chunk {chunk} (k = {} .. {}) differs from libm",
            chunk * 65_536,
            (chunk + 1) * 65_536
        );
    }
    // The Box–Muller pair itself, on words whose top bits hit the ends.
    for (xa, xb) in [
        (0u32, 0u32),
        (u32::MAX, u32::MAX),
        (0x8000_0000, 0x4000_0000),
    ] {
        let (z0, z1) = gaussian_from_words(xa, xb);
        assert!(z0.is_finite() && z1.is_finite());
    }
}
