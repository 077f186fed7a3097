//! Every path against the reference chain, on all edge sizes; row independence.

use super::*;
use kernel::MulAdd;

/// Tests `name::f32` and `name::f64` of the generic `fn name<T>()` (a module and a function
/// may share a name).
macro_rules! both_dtypes {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        mod $name {
            #[test]
            fn f32() {
                super::$name::<f32>();
            }

            #[test]
            fn f64() {
                super::$name::<f64>();
            }
        }
    };
}

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

both_dtypes!(mul_matches_reference);

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

both_dtypes!(mul_matches_reference_large);

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

both_dtypes!(rows_are_independent);

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

both_dtypes!(tn_matches_reference);

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

both_dtypes!(writes_stay_within_c);

// ---------------------------------------------------------------------------------------
// Audit of the unsafe kernel: every small shape on every path, against the reference chain,
// with guard zones around `c` (sentinels: masked or stack-tile stores past the slice) and, on
// Linux, guard pages around `a`, `b` and `c` (any read or write past either end faults).
// ---------------------------------------------------------------------------------------

/// The value around every output: no product of `values` gives it.
fn sentinel<T: Real>() -> T {
    T::c(-1234.5)
}

/// Sentinel values before and after the output region: odd, so that it is never a multiple
/// of a vector width and a store one vector past the end lands on a sentinel.
const GUARD: usize = 67;

/// `rhs.mul` for one shape, with `c` inside sentinels; checks the bits and the sentinels.
fn check_mul<T: Real + MulAdd>(isa: Isa, m: usize, k: usize, n: usize) {
    let a = values::<T>(m * k, 21 + (m * 131 + k * 17 + n) as u64);
    let w = values::<T>(k * n, 22 + (m + k * 7 + n * 19) as u64);
    let c0 = values::<T>(m * n, 23);
    let rhs = Rhs::with_isa(isa, &w, k, n);
    for accumulate in [false, true] {
        let mut buf = in_sentinels(&c0);
        rhs.mul(&a, &mut buf[GUARD..GUARD + m * n], accumulate);
        let want = reference(isa, &a, &w, &c0, m, k, n, accumulate);
        let what = format!("{isa:?} {} m={m} k={k} n={n} acc={accumulate}", T::NAME);
        assert_in_sentinels(&buf, &want, &what);
    }
}

/// `c0` between [`GUARD`] sentinels on either side.
fn in_sentinels<T: Real>(c0: &[T]) -> Vec<T> {
    let mut buf = vec![sentinel::<T>(); GUARD + c0.len() + GUARD];
    buf[GUARD..GUARD + c0.len()].copy_from_slice(c0);
    buf
}

/// The result inside the sentinels of [`in_sentinels`] is `want`, bit for bit, and the
/// sentinels are untouched.
fn assert_in_sentinels<T: Real>(buf: &[T], want: &[T], what: &str) {
    let inside = GUARD..buf.len() - GUARD;
    assert_eq!(bits(&buf[inside.clone()]), bits(want), "{what}");
    let outside = buf[..GUARD].iter().chain(&buf[inside.end..]);
    assert!(
        outside.into_iter().all(untouched),
        "write outside c: {what}"
    );
}

/// `tn_with_isa` for one shape (`r` rows of `a` and `b`), with `c` inside sentinels.
fn check_tn<T: Real + MulAdd>(isa: Isa, r: usize, m: usize, n: usize) {
    let a = values::<T>(r * m, 31 + (r * 5 + m * 3 + n) as u64);
    let b = values::<T>(r * n, 32 + (r + m + n * 11) as u64);
    let c0 = values::<T>(m * n, 33);
    let mut buf = in_sentinels(&c0);
    tn_with_isa(isa, &a, &b, &mut buf[GUARD..GUARD + m * n], m, n);
    let want: Vec<T> = (0..m * n)
        .map(|ij| {
            let (i, j) = (ij / n, ij % n);
            chain(isa, c0[ij], r, |p| a[p * m + i], |p| b[p * n + j])
        })
        .collect();
    assert_in_sentinels(
        &buf,
        &want,
        &format!("{isa:?} {} r={r} m={m} n={n}", T::NAME),
    );
}

/// Whether `x` still holds the sentinel, bit for bit.
fn untouched<T: Real>(x: &T) -> bool {
    x.to_f64_exact().to_bits() == sentinel::<T>().to_f64_exact().to_bits()
}

/// m = 0..=27 (past two 12-row tiles), n = 0..=70 (past two 32-wide f32 panels and four
/// 16-wide f64 ones, every mask width), shallow k including 0.
fn mul_exhaustive_small<T: Real + MulAdd>() {
    for isa in Isa::all_supported() {
        for m in 0..=27 {
            for n in 0..=70 {
                for k in [0, 1, 2, 3, 4, 5, 8, 9] {
                    check_mul::<T>(isa, m, k, n);
                }
            }
        }
    }
}

both_dtypes!(mul_exhaustive_small);

/// Depth around the `KC` blocks (equal blocks: 257 = 2 × 129, 513 = 3 × 171), the 4 KiB
/// aliasing rule (8-row tiles from m = 9 when rows of `a` are 4 KiB apart), and the `MC`
/// row block (144).
fn mul_block_edges<T: Real + MulAdd>() {
    let size = std::mem::size_of::<T>();
    let alias_k = 4096 / size;
    for isa in Isa::all_supported() {
        for k in [255, 256, 257, 511, 512, 513] {
            for m in [1, 2, 11, 12, 13, 25] {
                for n in [1, 8, 15, 16, 17, 31, 32, 33, 65] {
                    check_mul::<T>(isa, m, k, n);
                }
            }
        }
        for k in [alias_k, 2 * alias_k] {
            for m in [7, 8, 9, 10, 16, 17, 23] {
                for n in [1, 3, 9, 17, 33] {
                    check_mul::<T>(isa, m, k, n);
                }
            }
        }
        for m in [143, 144, 145, 288, 289] {
            for n in [1, 5, 16, 33] {
                check_mul::<T>(isa, m, 3, n);
            }
        }
    }
}

both_dtypes!(mul_block_edges);

/// `matmul_tn` on every small shape, with `m` on both sides of the threshold where aᵀ is
/// packed (rows of `a` longer than 512 bytes) and `r` across `KC`.
fn tn_exhaustive_small<T: Real + MulAdd>() {
    let pack_from = 512 / std::mem::size_of::<T>() + 1;
    let mut ms: Vec<usize> = (1..=27).collect();
    ms.extend([pack_from - 1, pack_from, pack_from + 1, pack_from + 12]);
    for isa in Isa::all_supported() {
        // m = 0: `r` cannot be told from an empty `a`, so only r = 0 is a valid shape.
        for n in 0..=70 {
            check_tn::<T>(isa, 0, 0, n);
        }
        for &m in &ms {
            for n in 0..=70 {
                for r in [0, 1, 2, 3, 5] {
                    check_tn::<T>(isa, r, m, n);
                }
            }
        }
        for r in [255, 256, 257] {
            for &m in &[1, 2, 13, pack_from, pack_from + 1] {
                for n in [1, 9, 17, 33] {
                    check_tn::<T>(isa, r, m, n);
                }
            }
        }
    }
}

both_dtypes!(tn_exhaustive_small);

/// Memory with an inaccessible page on each side: `len` values flush against the guard page
/// after them (`at_end`) or before them, so that reading or writing one value past either
/// end of the slice faults.
#[cfg(target_os = "linux")]
struct Guarded<T> {
    base: *mut u8,
    total: usize,
    ptr: *mut T,
    len: usize,
}

#[cfg(target_os = "linux")]
mod sys {
    use std::ffi::{c_int, c_long, c_void};
    extern "C" {
        pub fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            off: i64,
        ) -> *mut c_void;
        pub fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int;
        pub fn munmap(addr: *mut c_void, len: usize) -> c_int;
        pub fn sysconf(name: c_int) -> c_long;
    }
    pub const PROT_NONE: c_int = 0;
    pub const PROT_READ_WRITE: c_int = 1 | 2;
    pub const MAP_PRIVATE_ANONYMOUS: c_int = 0x02 | 0x20;
    pub const SC_PAGESIZE: c_int = 30;
}

#[cfg(target_os = "linux")]
impl<T: Real> Guarded<T> {
    fn new(values: &[T], at_end: bool) -> Self {
        let len = values.len();
        let bytes = std::mem::size_of_val(values);
        // SAFETY: plain system calls on a mapping of our own.
        unsafe {
            let page = sys::sysconf(sys::SC_PAGESIZE) as usize;
            let data = bytes.div_ceil(page).max(1) * page;
            let total = data + 2 * page;
            let base = sys::mmap(
                std::ptr::null_mut(),
                total,
                sys::PROT_NONE,
                sys::MAP_PRIVATE_ANONYMOUS,
                -1,
                0,
            );
            assert!(base as isize != -1, "mmap failed");
            let base = base as *mut u8;
            let rc = sys::mprotect(base.add(page).cast(), data, sys::PROT_READ_WRITE);
            assert_eq!(rc, 0, "mprotect failed");
            let start = if at_end { page + data - bytes } else { page };
            let ptr = base.add(start) as *mut T;
            std::ptr::copy_nonoverlapping(values.as_ptr(), ptr, len);
            Guarded {
                base,
                total,
                ptr,
                len,
            }
        }
    }

    fn slice(&self) -> &[T] {
        // SAFETY: `len` initialized values in our read-write pages.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn slice_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `slice`; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

#[cfg(target_os = "linux")]
impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no borrow of it outlives `self`.
        unsafe { sys::munmap(self.base.cast(), self.total) };
    }
}

/// The blocked loops of `mul`, with `a`, packed `B` and `c` each between guard pages: no
/// load (masked or not, of `a`, `B` or `c`) or store reaches past the operands.
#[cfg(target_os = "linux")]
fn mul_reads_stay_within_operands<T: Real + MulAdd>() {
    for isa in Isa::all_supported() {
        for at_end in [true, false] {
            for m in [1, 2, 5, 6, 7, 9, 11, 12, 13, 25] {
                for k in [1, 2, 7, 17] {
                    for n in 1..=70 {
                        let a = values::<T>(m * k, 41);
                        let w = values::<T>(k * n, 42);
                        let c0 = values::<T>(m * n, 43);
                        let rhs = Rhs::with_isa(isa, &w, k, n);
                        let ga = Guarded::new(&a, at_end);
                        let gb = Guarded::new(&rhs.data, at_end);
                        for accumulate in [false, true] {
                            let mut gc = Guarded::new(&c0, at_end);
                            // The operands `Rhs::mul` builds, with the guarded copies.
                            let o = Operands {
                                m,
                                n,
                                k,
                                a: ga.slice().as_ptr(),
                                tile: k,
                                rsa: k,
                                csa: 1,
                                b: gb.slice().as_ptr(),
                                c: gc.slice_mut().as_mut_ptr(),
                                accumulate,
                            };
                            // SAFETY: as in `Rhs::mul`: a is m×k, c is m×n, b is `rhs.data`
                            // laid out for `isa`, which this CPU supports (or emulated).
                            unsafe { run(isa, &o) };
                            let want = reference(isa, &a, &w, &c0, m, k, n, accumulate);
                            assert_eq!(
                                bits(gc.slice()),
                                bits(&want),
                                "{isa:?} {} m={m} k={k} n={n} acc={accumulate} end={at_end}",
                                T::NAME
                            );
                        }
                    }
                }
            }
        }
    }
}

both_dtypes!(
    #[cfg(target_os = "linux")]
    mul_reads_stay_within_operands
);

/// `tn_with_isa` with `a`, `b` and `c` between guard pages (`a` read in place below the
/// packing threshold, `b` read in place on the portable path).
#[cfg(target_os = "linux")]
fn tn_reads_stay_within_operands<T: Real + MulAdd>() {
    let pack_from = 512 / std::mem::size_of::<T>() + 1;
    for isa in Isa::all_supported() {
        for at_end in [true, false] {
            for m in [1, 2, 5, 6, 7, 12, 13, pack_from - 1, pack_from] {
                for r in [1, 2, 7] {
                    for n in 1..=70 {
                        let a = values::<T>(r * m, 51);
                        let b = values::<T>(r * n, 52);
                        let c0 = values::<T>(m * n, 53);
                        let ga = Guarded::new(&a, at_end);
                        let gb = Guarded::new(&b, at_end);
                        let mut gc = Guarded::new(&c0, at_end);
                        tn_with_isa(isa, ga.slice(), gb.slice(), gc.slice_mut(), m, n);
                        let want: Vec<T> = (0..m * n)
                            .map(|ij| {
                                let (i, j) = (ij / n, ij % n);
                                chain(isa, c0[ij], r, |p| a[p * m + i], |p| b[p * n + j])
                            })
                            .collect();
                        assert_eq!(
                            bits(gc.slice()),
                            bits(&want),
                            "{isa:?} {} r={r} m={m} n={n} end={at_end}",
                            T::NAME
                        );
                    }
                }
            }
        }
    }
}

both_dtypes!(
    #[cfg(target_os = "linux")]
    tn_reads_stay_within_operands
);

/// The guard pages above work: reading one value past either end of a [`Guarded`] slice
/// faults. The read runs in a child process of this test binary, which must die by a signal.
#[cfg(target_os = "linux")]
#[test]
fn guard_pages_catch_one_value_past_either_end() {
    const CHILD: &str = "SCOREMATCH_GUARD_PAGES_CHILD";
    if let Some(which) = std::env::var_os(CHILD) {
        let at_end = which == "end";
        let g = Guarded::new(&[1.0f64; 5], at_end);
        let p = g.slice().as_ptr();
        // SAFETY: none: this read is meant to fault, in the child process alone (the
        // address lies in our mapping, on its inaccessible guard page).
        let x = unsafe { std::ptr::read_volatile(if at_end { p.add(5) } else { p.sub(1) }) };
        println!("read {x} past the slice: the guard page did not fault");
        return;
    }
    for which in ["end", "start"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "gemm::tests::guard_pages_catch_one_value_past_either_end",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD, which)
            .output()
            .unwrap();
        assert!(
            out.status.code().is_none(),
            "a read past the {which} of a guarded slice did not fault: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
