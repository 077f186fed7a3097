//! Timing for the GEMM examples (`roofline`, `gemm_shapes`), shared by `#[path]`: examples
//! are standalone crates.

use std::time::{Duration, Instant};

/// Seconds per call of `f`, over a block of calls that fills `at_least`: the count is measured
/// on a first call, after an untimed one.
pub fn time_block(at_least: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-9);
    let calls = ((at_least.as_secs_f64() / one).ceil() as usize).max(1);
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_secs_f64() / calls as f64
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
