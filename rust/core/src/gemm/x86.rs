//! The x86-64 instruction sets: vector wrappers for [`kernel::tile`](super::kernel) and the
//! `#[target_feature]` entry points that instantiate the blocked loops for each.
//!
//! Register tiles (accumulators of `MR` rows × `NV` vectors; `NV` = 1 when the product has no
//! more columns than a vector holds, see `kernel::panel_vectors`):
//! - AVX2 + FMA, 16 ymm registers: 6 × 2 → 12 accumulators + 2 loads of `B` + 1 broadcast,
//!   i.e. 6 × 16 (f32) or 6 × 8 (f64), the BLIS Haswell tiles. Two FMA ports with a latency of
//!   4 cycles need ≥ 8 independent accumulators.
//! - AVX-512F, 32 zmm registers: 12 × 2 → 24 accumulators + 2 + 1, i.e. 12 × 32 (f32) or
//!   12 × 16 (f64).

use std::arch::x86_64::*;

use super::kernel::{drive_panels, Operands, Simd};

macro_rules! simd {
    ($name:ident, $t:ty, $v:ty, $lanes:expr, $zero:ident, $splat:ident, $load:ident,
     $store:ident, $fma:ident) => {
        simd!($name, $t, $v, $lanes, $zero, $splat, $load, $store, $fma, {
            const MASKED: bool = false;
            type M = ();
            #[inline(always)]
            unsafe fn first(_: usize) {}
            unsafe fn load_first(_: *const $t, _: ()) -> $v {
                unreachable!("no masked moves")
            }
            unsafe fn store_first(_: *mut $t, _: (), _: $v) {
                unreachable!("no masked moves")
            }
        });
    };
    ($name:ident, $t:ty, $v:ty, $lanes:expr, $zero:ident, $splat:ident, $load:ident,
     $store:ident, $fma:ident, mask $m:ty, $mload:ident, $mstore:ident) => {
        simd!($name, $t, $v, $lanes, $zero, $splat, $load, $store, $fma, {
            const MASKED: bool = true;
            type M = $m;
            #[inline(always)]
            unsafe fn first(n: usize) -> $m {
                ((1u32 << n) - 1) as $m
            }
            #[inline(always)]
            unsafe fn load_first(p: *const $t, m: $m) -> $v {
                $mload(m, p)
            }
            #[inline(always)]
            unsafe fn store_first(p: *mut $t, m: $m, v: $v) {
                $mstore(p, m, v)
            }
        });
    };
    ($name:ident, $t:ty, $v:ty, $lanes:expr, $zero:ident, $splat:ident, $load:ident,
     $store:ident, $fma:ident, vmask $first:ident, $mload:ident, $mstore:ident) => {
        simd!($name, $t, $v, $lanes, $zero, $splat, $load, $store, $fma, {
            const MASKED: bool = true;
            type M = __m256i;
            #[inline(always)]
            unsafe fn first(n: usize) -> __m256i {
                $first(n)
            }
            #[inline(always)]
            unsafe fn load_first(p: *const $t, m: __m256i) -> $v {
                $mload(p, m)
            }
            #[inline(always)]
            unsafe fn store_first(p: *mut $t, m: __m256i, v: $v) {
                $mstore(p, m, v)
            }
        });
    };
    ($name:ident, $t:ty, $v:ty, $lanes:expr, $zero:ident, $splat:ident, $load:ident,
     $store:ident, $fma:ident, { $($masked:tt)* }) => {
        #[derive(Clone, Copy)]
        pub(super) struct $name;
        impl Simd for $name {
            type T = $t;
            type V = $v;
            const LANES: usize = $lanes;
            #[inline(always)]
            unsafe fn zero() -> $v {
                $zero()
            }
            #[inline(always)]
            unsafe fn splat(p: *const $t) -> $v {
                $splat(*p)
            }
            #[inline(always)]
            unsafe fn load(p: *const $t) -> $v {
                $load(p)
            }
            #[inline(always)]
            unsafe fn store(p: *mut $t, v: $v) {
                $store(p, v)
            }
            #[inline(always)]
            unsafe fn fma(a: $v, b: $v, c: $v) -> $v {
                $fma(a, b, c)
            }
            $($masked)*
        }
    };
}

simd!(
    Avx2F32,
    f32,
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_fmadd_ps
);

/// The lanes `0..n` of an f64 ymm vector (`n ≤ 4`), as the sign bits `vmaskmovpd` reads.
#[inline(always)]
unsafe fn first_pd(n: usize) -> __m256i {
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3))
}

// AVX2 masked moves (`vmaskmovpd`) for the narrow last panel in f64 only. Measured on Zen 4
// (one thread, `gemm_shapes`, SCOREMATCH_GEMM=avx2, medians of 9 alternated runs, m = 256)
// against the stack tile: 0.59–0.80 of its time at k = 2 (n = 1, 2, 3, 7, 9, 17), 0.80–0.94
// at k = 7, 0.95–0.98 at k = 64; one row (m = 1, k = 64): 0.82–0.83. In f32, `vmaskmovps`
// stores (8 lanes; reputedly slow on AMD) made the same shapes 1.1–1.4 × slower at k ≤ 7, so f32
// keeps the stack tile (there, reading only the first vector of the panel when its columns
// fit one vector, as masked paths do, gave no measurable gain, and was not kept).
simd!(
    Avx2F64,
    f64,
    __m256d,
    4,
    _mm256_setzero_pd,
    _mm256_set1_pd,
    _mm256_loadu_pd,
    _mm256_storeu_pd,
    _mm256_fmadd_pd,
    vmask first_pd,
    _mm256_maskload_pd,
    _mm256_maskstore_pd
);
simd!(
    Avx512F32,
    f32,
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_fmadd_ps,
    mask __mmask16,
    _mm512_maskz_loadu_ps,
    _mm512_mask_storeu_ps
);
simd!(
    Avx512F64,
    f64,
    __m512d,
    8,
    _mm512_setzero_pd,
    _mm512_set1_pd,
    _mm512_loadu_pd,
    _mm512_storeu_pd,
    _mm512_fmadd_pd,
    mask __mmask8,
    _mm512_maskz_loadu_pd,
    _mm512_mask_storeu_pd
);

/// Rows of the AVX2 register tile.
pub(super) const MR_AVX2: usize = 6;
/// Rows of the AVX-512 register tile.
pub(super) const MR_AVX512: usize = 12;

/// Values of `T` per AVX2 (ymm) vector.
pub(super) const fn lanes_avx2(size_of_t: usize) -> usize {
    32 / size_of_t
}

/// Values of `T` per AVX-512 (zmm) vector.
pub(super) const fn lanes_avx512(size_of_t: usize) -> usize {
    64 / size_of_t
}

/// # Safety
/// The CPU supports AVX2 and FMA; `o` satisfies the contract of [`drive_panels`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn avx2_f32(o: &Operands<f32>) {
    // SAFETY: forwarded contract; the features of `Avx2F32` are enabled on this function.
    unsafe { drive_panels::<Avx2F32, MR_AVX2>(o) }
}

/// # Safety
/// As [`avx2_f32`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn avx2_f64(o: &Operands<f64>) {
    // SAFETY: forwarded contract; the features of `Avx2F64` are enabled on this function.
    unsafe { drive_panels::<Avx2F64, MR_AVX2>(o) }
}

/// # Safety
/// The CPU supports AVX-512F; `o` satisfies the contract of [`drive_panels`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f32(o: &Operands<f32>) {
    // SAFETY: forwarded contract; the features of `Avx512F32` are enabled on this function.
    unsafe { drive_panels::<Avx512F32, MR_AVX512>(o) }
}

/// # Safety
/// As [`avx512_f32`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f64(o: &Operands<f64>) {
    // SAFETY: forwarded contract; the features of `Avx512F64` are enabled on this function.
    unsafe { drive_panels::<Avx512F64, MR_AVX512>(o) }
}
