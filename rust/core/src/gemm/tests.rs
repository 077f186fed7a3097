//! Every path against the reference chain, on all edge sizes; row independence.

use super::*;
use kernel::MulAdd;

/// Register-tile rows of [`Isa::Emulated512`]: those of the AVX-512 path, taken from it so
/// that the two cannot drift apart.
#[cfg(target_arch = "x86_64")]
pub(super) const EMU_MR: usize = x86::MR_AVX512;
#[cfg(not(target_arch = "x86_64"))]
pub(super) const EMU_MR: usize = 12;

/// A vector of `L` lanes as a plain array, with an exactly rounded FMA per lane: a zmm
/// register in ordinary Rust. The AVX-512 wrappers in `x86.rs` are one intrinsic each; what
/// that path adds is its geometry, and [`Isa::Emulated512`] runs the blocked loops with it.
#[derive(Clone, Copy)]
pub(super) struct Emu<T, const L: usize>(std::marker::PhantomData<T>);

impl<T: Real, const L: usize> kernel::Simd for Emu<T, L> {
    type T = T;
    type V = [T; L];
    const LANES: usize = L;
    unsafe fn zero() -> [T; L] {
        [T::zero(); L]
    }
    unsafe fn splat(p: *const T) -> [T; L] {
        // SAFETY: the kernel's contract makes `p` valid.
        [unsafe { *p }; L]
    }
    unsafe fn load(p: *const T) -> [T; L] {
        // SAFETY: the kernel's contract makes `L` values at `p` valid.
        unsafe { std::ptr::read_unaligned(p as *const [T; L]) }
    }
    unsafe fn store(p: *mut T, v: [T; L]) {
        // SAFETY: as in `load`.
        unsafe { std::ptr::write_unaligned(p as *mut [T; L], v) }
    }
    unsafe fn fma(a: [T; L], b: [T; L], c: [T; L]) -> [T; L] {
        std::array::from_fn(|i| a[i].mul_add(b[i], c[i]))
    }
    // As AVX-512's masked moves, so that the emulated path runs the direct narrow last panel.
    const MASKED: bool = true;
    type M = usize;
    unsafe fn first(n: usize) -> usize {
        n
    }
    unsafe fn load_first(p: *const T, n: usize) -> [T; L] {
        std::array::from_fn(|i| {
            if i < n {
                // SAFETY: the kernel's contract makes the first `n` values at `p` valid.
                unsafe { *p.add(i) }
            } else {
                T::zero()
            }
        })
    }
    unsafe fn store_first(p: *mut T, n: usize, v: [T; L]) {
        for (i, &x) in v.iter().enumerate().take(n) {
            // SAFETY: as in `load_first`.
            unsafe { *p.add(i) = x };
        }
    }
}

/// Deterministic values in [-1, 1) with full mantissas, so that any change of the
/// summation order or of the rounding shows up in the bits.
fn values<T: Real>(len: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            T::c((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect()
}

/// The chain every path computes: `acc = c_init; acc = a·b + acc` for p = 0..k, fused on the
/// SIMD paths (and the portable one where the target has a hardware FMA).
fn chain<T: Real + MulAdd>(
    isa: Isa,
    init: T,
    k: usize,
    a: impl Fn(usize) -> T,
    b: impl Fn(usize) -> T,
) -> T {
    (0..k).fold(init, |acc, p| {
        if isa == Isa::Portable {
            a(p).mul_add_portable(b(p), acc)
        } else {
            a(p).mul_add(b(p), acc)
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn reference<T: Real + MulAdd>(
    isa: Isa,
    a: &[T],
    w: &[T],
    c0: &[T],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) -> Vec<T> {
    let mut c = vec![T::zero(); m * n];
    for i in 0..m {
        for j in 0..n {
            let init = if accumulate { c0[i * n + j] } else { T::zero() };
            c[i * n + j] = chain(isa, init, k, |p| a[i * k + p], |p| w[p * n + j]);
        }
    }
    c
}

fn bits<T: Real>(x: &[T]) -> Vec<u64> {
    x.iter().map(|v| v.to_f64_exact().to_bits()).collect()
}

const MS: &[usize] = &[1, 2, 5, 6, 7, 11, 12, 13, 25, 37, 69];
const KS: &[usize] = &[1, 2, 3, 7, 16, 17, 31, 64, 69];
const NS: &[usize] = &[
    1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 69,
];

fn mul_matches_reference<T: Real + MulAdd>() {
    for isa in Isa::all_supported() {
        for &m in MS {
            for &k in KS {
                for &n in NS {
                    let a = values::<T>(m * k, 1);
                    let w = values::<T>(k * n, 2);
                    let c0 = values::<T>(m * n, 3);
                    let rhs = Rhs::with_isa(isa, &w, k, n);
                    for accumulate in [false, true] {
                        let mut c = c0.clone();
                        rhs.mul(&a, &mut c, accumulate);
                        let want = reference(isa, &a, &w, &c0, m, k, n, accumulate);
                        assert_eq!(
                            bits(&c),
                            bits(&want),
                            "{isa:?} {} m={m} k={k} n={n} acc={accumulate}",
                            T::NAME
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn mul_matches_reference_f32() {
    mul_matches_reference::<f32>();
}

#[test]
fn mul_matches_reference_f64() {
    mul_matches_reference::<f64>();
}

/// Past one block of rows (`MC`) and one block of depth (`KC`).
fn mul_matches_reference_large<T: Real + MulAdd>() {
    for isa in Isa::all_supported() {
        // k = 512 (f64) and 1024: rows 4 KiB apart, packed first on 12-row tiles.
        for (m, k, n) in [
            (301, 300, 40),
            (150, 513, 17),
            (290, 257, 70),
            (29, 512, 9),
            (25, 1024, 20),
        ] {
            let a = values::<T>(m * k, 4);
            let w = values::<T>(k * n, 5);
            let c0 = values::<T>(m * n, 6);
            let rhs = Rhs::with_isa(isa, &w, k, n);
            for accumulate in [false, true] {
                let mut c = c0.clone();
                rhs.mul(&a, &mut c, accumulate);
                let want = reference(isa, &a, &w, &c0, m, k, n, accumulate);
                assert_eq!(
                    bits(&c),
                    bits(&want),
                    "{isa:?} {} m={m} k={k} n={n}",
                    T::NAME
                );
            }
        }
    }
}

#[test]
fn mul_matches_reference_large_f32() {
    mul_matches_reference_large::<f32>();
}

#[test]
fn mul_matches_reference_large_f64() {
    mul_matches_reference_large::<f64>();
}

/// The engine relies on this: a row's result never depends on how rows are chunked.
fn rows_are_independent<T: Real>() {
    for isa in Isa::all_supported() {
        for (k, n) in [(13, 29), (64, 64), (300, 33), (512, 9), (1024, 17)] {
            let m = 37;
            let a = values::<T>(m * k, 7);
            let w = values::<T>(k * n, 8);
            let c0 = values::<T>(m * n, 9);
            let rhs = Rhs::with_isa(isa, &w, k, n);
            for accumulate in [false, true] {
                let mut all = c0.clone();
                rhs.mul(&a, &mut all, accumulate);
                for i in 0..m {
                    let mut one = c0[i * n..(i + 1) * n].to_vec();
                    rhs.mul(&a[i * k..(i + 1) * k], &mut one, accumulate);
                    assert_eq!(
                        bits(&one),
                        bits(&all[i * n..(i + 1) * n]),
                        "{isa:?} row {i}"
                    );
                }
                // Any split of the rows gives the same bits.
                let mut split = c0.clone();
                let (a1, a2) = a.split_at(10 * k);
                let (c1, c2) = split.split_at_mut(10 * n);
                rhs.mul(a1, c1, accumulate);
                rhs.mul(a2, c2, accumulate);
                assert_eq!(bits(&split), bits(&all), "{isa:?}");
            }
        }
    }
}

#[test]
fn rows_are_independent_f32() {
    rows_are_independent::<f32>();
}

#[test]
fn rows_are_independent_f64() {
    rows_are_independent::<f64>();
}

/// With fused multiply-adds, AVX2 and AVX-512 agree bit for bit.
#[test]
fn simd_paths_agree() {
    let paths: Vec<Isa> = Isa::all_supported()
        .into_iter()
        .filter(|&i| i != Isa::Portable)
        .collect();
    let (m, k, n) = (29, 70, 45);
    let a = values::<f32>(m * k, 10);
    let w = values::<f32>(k * n, 11);
    let outs: Vec<Vec<f32>> = paths
        .iter()
        .map(|&isa| {
            let mut c = vec![0.0; m * n];
            Rhs::with_isa(isa, &w, k, n).mul(&a, &mut c, false);
            c
        })
        .collect();
    for o in &outs {
        assert_eq!(bits(o), bits(&outs[0]));
    }
}

fn tn_matches_reference<T: Real + MulAdd>() {
    for isa in Isa::all_supported() {
        for &r in &[1, 2, 7, 37, 300] {
            // m·size ≤ 512 bytes reads aᵀ in place; 70 (f64) and 150 pack it.
            for &m in &[1, 3, 6, 13, 33, 70, 150] {
                for &n in &[1, 5, 8, 16, 17, 33, 64, 69] {
                    let a = values::<T>(r * m, 12);
                    let b = values::<T>(r * n, 13);
                    let c0 = values::<T>(m * n, 14);
                    let mut c = c0.clone();
                    tn_with_isa(isa, &a, &b, &mut c, m, n);
                    let want: Vec<T> = (0..m * n)
                        .map(|ij| {
                            let (i, j) = (ij / n, ij % n);
                            chain(isa, c0[ij], r, |p| a[p * m + i], |p| b[p * n + j])
                        })
                        .collect();
                    assert_eq!(
                        bits(&c),
                        bits(&want),
                        "{isa:?} {} r={r} m={m} n={n}",
                        T::NAME
                    );
                }
            }
        }
    }
}

#[test]
fn tn_matches_reference_f32() {
    tn_matches_reference::<f32>();
}

#[test]
fn tn_matches_reference_f64() {
    tn_matches_reference::<f64>();
}

#[test]
fn transposed_is_the_transpose() {
    let (m, k, n) = (37, 13, 29);
    let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 % 11) as f64) - 5.0).collect();
    let w: Vec<f64> = (0..k * n)
        .map(|i| ((i * 5 % 13) as f64) * 0.5 - 3.0)
        .collect();
    let mut want = vec![0.0; m * n];
    Rhs::new(&w, k, n).mul(&a, &mut want, false);
    // Wᵀ given as the (n × k) matrix it transposes.
    let wt: Vec<f64> = (0..n)
        .flat_map(|j| (0..k).map(move |p| (p, j)))
        .map(|(p, j)| w[p * n + j])
        .collect();
    let rhs = Rhs::transposed(&wt, n, k);
    assert_eq!((rhs.k(), rhs.n()), (k, n));
    let mut c = want.clone();
    rhs.mul(&a, &mut c, true);
    // Small integers: every partial sum is exact.
    assert!(c.iter().zip(&want).all(|(x, y)| *x == 2.0 * y));
}

#[test]
fn empty_shapes() {
    for isa in Isa::all_supported() {
        // k = 0: c = 0, or unchanged when accumulating.
        let rhs = Rhs::<f32>::with_isa(isa, &[], 0, 3);
        let mut c = vec![1.0f32; 6];
        rhs.mul(&[], &mut c, true);
        assert_eq!(c, [1.0; 6]);
        rhs.mul(&[], &mut c, false);
        assert_eq!(c, [0.0; 6]);
        // n = 0 and m = 0: nothing to do.
        Rhs::<f64>::with_isa(isa, &[], 4, 0).mul(&[1.0; 8], &mut [], false);
        Rhs::<f64>::with_isa(isa, &[1.0; 8], 4, 2).mul(&[], &mut [], false);
        let mut c = [5.0f64; 4];
        tn_with_isa(isa, &[], &[], &mut c, 2, 2);
        assert_eq!(c, [5.0; 4]);
    }
}

#[test]
fn backend_is_named() {
    assert!(["avx512", "avx2", "portable"].contains(&backend()));
}

#[test]
fn relaid_weights_equal_fresh_ones() {
    for isa in Isa::all_supported() {
        for (k, n) in [(1, 1), (13, 29), (64, 64), (7, 33), (2, 130)] {
            let w = |s: usize| -> Vec<f32> {
                (0..k * n).map(|i| ((i * s % 17) as f32) - 8.0).collect()
            };
            // `set` rewrites every element, the zero padding included (poisoned here).
            let mut rhs = Rhs::with_isa(isa, &w(5), k, n);
            rhs.data.fill(f32::NAN);
            rhs.set(&w(3));
            assert_eq!(rhs.data, Rhs::with_isa(isa, &w(3), k, n).data);
            let nr = isa.nr::<f32>(n);
            if nr > 0 {
                let mut packed = vec![0.0; n.div_ceil(nr) * k * nr];
                kernel::pack(&mut packed, &w(3), k, n, nr);
                assert_eq!(rhs.data, packed, "{} {k}x{n}", isa.name());
            }
            // `set_transposed` reads w as the (n × k) matrix it transposes.
            let wt: Vec<f32> = (0..n)
                .flat_map(|j| (0..k).map(move |p| (p, j)))
                .map(|(p, j)| w(3)[p * n + j])
                .collect();
            let mut t = Rhs::with_isa(isa, &w(5), k, n);
            t.data.fill(f32::NAN);
            t.set_transposed(&wt);
            assert_eq!(t.data, rhs.data, "{} {k}x{n}", isa.name());
        }
    }
}

#[test]
fn the_environment_caps_the_path_never_raises_it() {
    let best = Isa::best_supported();
    assert_eq!(capped(best, None), best);
    assert_eq!(capped(best, Some("portable")), Isa::Portable);
    // Unknown values, and asking for more than the CPU has, keep the best path.
    for other in ["avx512", "AVX2", "", "sse2"] {
        assert_eq!(capped(best, Some(other)), best, "{other:?}");
    }
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(capped(Isa::Avx512, Some("avx2")), Isa::Avx2);
        assert_eq!(capped(Isa::Avx2, Some("avx2")), Isa::Avx2);
        assert_eq!(capped(Isa::Portable, Some("avx2")), Isa::Portable);
        assert_eq!(capped(Isa::Avx512, None), Isa::Avx512);
    }
}

/// Panels are one vector wide exactly when `B` fits in one vector (a speed rule: the results
/// are the same either way, as `mul_matches_reference` checks on every path and width).
#[test]
fn narrow_products_use_one_vector_panels() {
    // (path, size of T, n, panel width)
    let mut cases = vec![
        (Isa::Portable, 4, 3, 0),
        (Isa::Emulated512, 4, 16, 16),
        (Isa::Emulated512, 4, 17, 32),
        (Isa::Emulated512, 8, 1, 8),
        (Isa::Emulated512, 8, 8, 8),
        (Isa::Emulated512, 8, 9, 16),
    ];
    #[cfg(target_arch = "x86_64")]
    cases.extend([
        (Isa::Avx2, 4, 8, 8),
        (Isa::Avx2, 4, 9, 16),
        (Isa::Avx2, 8, 4, 4),
        (Isa::Avx2, 8, 5, 8),
        (Isa::Avx512, 4, 2, 16),
        (Isa::Avx512, 4, 64, 32),
        (Isa::Avx512, 8, 16, 16),
    ]);
    for (isa, size, n, nr) in cases {
        let got = if size == 4 {
            isa.nr::<f32>(n)
        } else {
            isa.nr::<f64>(n)
        };
        assert_eq!(got, nr, "{isa:?}, {size}-byte values, n = {n}");
    }
}

/// The narrow last panel is written straight into `c` by masked stores on AVX-512, on AVX2 in
/// f64 (and on the emulated path): nothing before or after `c` changes, whatever the width, on
/// every path.
fn writes_stay_within_c<T: Real + MulAdd>() {
    let pad = 64;
    for isa in Isa::all_supported() {
        for &m in &[1, 5, 13] {
            for &n in &[1, 3, 7, 9, 17, 33, 47] {
                let k = 5;
                let a = values::<T>(m * k, 15);
                let w = values::<T>(k * n, 16);
                let rhs = Rhs::with_isa(isa, &w, k, n);
                for accumulate in [false, true] {
                    let mut buf = vec![T::c(7.0); pad + m * n + pad];
                    rhs.mul(&a, &mut buf[pad..pad + m * n], accumulate);
                    let mut tn = vec![T::c(7.0); pad + m * n + pad];
                    let at = values::<T>(k * m, 17);
                    tn_with_isa(isa, &at, &w, &mut tn[pad..pad + m * n], m, n);
                    for out in [&buf, &tn] {
                        let outside = out[..pad].iter().chain(&out[pad + m * n..]);
                        assert!(
                            outside.into_iter().all(|&x| x == T::c(7.0)),
                            "{isa:?} {} m={m} n={n} acc={accumulate}",
                            T::NAME
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn writes_stay_within_c_f32() {
    writes_stay_within_c::<f32>();
}

#[test]
fn writes_stay_within_c_f64() {
    writes_stay_within_c::<f64>();
}
