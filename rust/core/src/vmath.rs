//! Branch-free exp and log1p for the activations, written so that loops over slices
//! vectorize (the standard library's `exp` and `ln_1p` are scalar calls).
//!
//! Both are accurate to a few ulps on the ranges the activations use them on (checked in the
//! tests below):
//! - `exp(x)` for x ≤ 0: x = n·ln2 + r with |r| ≤ ln2/2, a Taylor polynomial of r, and 2ⁿ built
//!   from its exponent bits;
//! - `log1p(e)` for 0 ≤ e ≤ 1: e·q(e − ½), q a polynomial approximation of ln(1 + e)/e (its
//!   nearest singularity, at e = −1, is far enough from [0, 1] for degree 9 in f32 and 20 in
//!   f64). No division, unlike the textbook atanh series of (u−1)/(u+1), and multiplying by e
//!   keeps small e to full relative accuracy with no correction term.
//!
//! Polynomials use fused multiply-adds (one rounding per step and half the latency), in
//! Estrin's order. On CPUs without FMA `mul_add` is a (slow, exact) library call, so every
//! path rounds alike.

/// The two primitives, per floating-point type (the polynomial degrees differ).
pub trait Transcendental: Copy {
    /// eˣ for x ≤ 0; 0 where eˣ would be subnormal.
    fn exp_nonpos(x: Self) -> Self;
    /// ln(1 + e) for 0 ≤ e ≤ 1.
    fn ln_1p_unit(e: Self) -> Self;
    /// tanh(x) and 1 − tanh²(x), the latter to full relative accuracy in the tails, where
    /// 1 − t² by subtraction is 0 or noise (|x| ≳ 9 in f32, 19 in f64). The engine calls
    /// [`Transcendental::tanh_sech2_with`]; this is its reference form, for the tests.
    #[cfg(test)]
    fn tanh_sech2(x: Self) -> (Self, Self);
    /// tanh(x) and 1 − tanh²(x), as `tanh_sech2`, given `e = exp_nonpos(−2|x|)`, so that a
    /// loop can compute the exponentials of a block first (see `activation`).
    fn tanh_sech2_with(x: Self, e: Self) -> (Self, Self);
}

/// The two operations of [`estrin`], per float type.
trait Estrin: Copy {
    fn fma(a: Self, b: Self, c: Self) -> Self;
    fn mul(a: Self, b: Self) -> Self;
}

/// Σ c[i]·xⁱ by Estrin's scheme: pairs `c[2i] + c[2i+1]·x`, then pairs of those with x², x⁴,
/// … — the same work as Horner's rule with a dependency chain of depth ⌈log₂ len⌉ instead
/// of `len − 1`, so that the out-of-order core overlaps many elements of a vectorized loop
/// (Horner's 13-FMA chain for the f64 exponential kept it latency-bound).
/// `c.len()` is a constant at every call, so the loops unroll into registers.
#[inline(always)]
fn estrin<T: Estrin>(x: T, c: &[T]) -> T {
    let f = T::fma;
    // Level 1: pᵢ = c[2i] + c[2i+1]·x (a last odd coefficient stands alone).
    let p = |i: usize| {
        if 2 * i + 1 < c.len() {
            f(c[2 * i + 1], x, c[2 * i])
        } else {
            c[2 * i]
        }
    };
    let x2 = T::mul(x, x);
    let x4 = T::mul(x2, x2);
    let x8 = T::mul(x4, x4);
    let x16 = T::mul(x8, x8);
    // The lengths used by the polynomials below; the match folds away after inlining. (A
    // loop over any length computes the same tree, but LLVM does not unroll it: measured 7×
    // slower in the activation loops.)
    match c.len() {
        6 => f(p(2), x4, f(p(1), x2, p(0))),
        8 => f(f(p(3), x2, p(2)), x4, f(p(1), x2, p(0))),
        9 => f(p(4), x8, f(f(p(3), x2, p(2)), x4, f(p(1), x2, p(0)))),
        11 | 12 => f(
            f(p(5), x2, p(4)),
            x8,
            f(f(p(3), x2, p(2)), x4, f(p(1), x2, p(0))),
        ),
        13 | 14 => f(
            f(p(6), x4, f(p(5), x2, p(4))),
            x8,
            f(f(p(3), x2, p(2)), x4, f(p(1), x2, p(0))),
        ),
        20 => f(
            f(p(9), x2, p(8)),
            x16,
            f(
                f(f(p(7), x2, p(6)), x4, f(p(5), x2, p(4))),
                x8,
                f(f(p(3), x2, p(2)), x4, f(p(1), x2, p(0))),
            ),
        ),
        n => unreachable!("no Estrin scheme for {n} coefficients"),
    }
}

macro_rules! impl_transcendental {
    ($t:ty, $mant:expr, $bias:expr, $min:expr, $exp_coeffs:expr, $tanh_coeffs:expr, $log1p_coeffs:expr) => {
        impl Estrin for $t {
            #[inline(always)]
            fn fma(a: $t, b: $t, c: $t) -> $t {
                a.mul_add(b, c)
            }
            #[inline(always)]
            fn mul(a: $t, b: $t) -> $t {
                a * b
            }
        }

        impl Transcendental for $t {
            #[inline(always)]
            fn ln_1p_unit(e: $t) -> $t {
                // c₀ + t·(c₁ + c₂t + …): the leading term, most of q, is rounded once, in the
                // last FMA (in f32, all of Estrin's order rounded it three times: 1.96 instead
                // of 1.17·2⁻²³ worst case).
                let c: &[$t] = &$log1p_coeffs;
                let t = e - 0.5;
                e * t.mul_add(estrin(t, &c[1..]), c[0])
            }

            #[inline(always)]
            fn exp_nonpos(x: $t) -> $t {
                const LOG2E: $t = std::f64::consts::LOG2_E as $t;
                // ln 2 split so that n·LN2_HI is exact for the n that occur.
                const LN2_HI: $t = 0.693_145_751_953_125_f64 as $t;
                const LN2_LO: $t = 1.428_606_820_309_417_3e-6_f64 as $t;
                // Adding 1.5·2^mant rounds to the nearest integer in the low mantissa bits.
                const SHIFTER: $t = 1.5 * (1u64 << $mant) as $t;
                let tiny = x < $min;
                let x = x.max($min);
                let t = x.mul_add(LOG2E, SHIFTER);
                let n = t - SHIFTER;
                // n·LN2_HI is exact, so the first step is too; the FMAs only save instructions.
                let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
                let c: &[$t] = &$exp_coeffs;
                let p = estrin(r, c);
                // 2ⁿ: t = SHIFTER + n exactly, in a binade where one ulp is 1, so n sits in the
                // low bits of t and moves into the exponent field with integer operations only
                // (a float-to-int conversion would not vectorize).
                let e_bits = t
                    .to_bits()
                    .wrapping_sub(SHIFTER.to_bits())
                    .wrapping_add($bias)
                    << $mant;
                let scale = <$t>::from_bits(e_bits);
                // Below the threshold eˣ underflows (to a subnormal or 0): return 0.
                if tiny {
                    0.0
                } else {
                    p * scale
                }
            }

            #[cfg(test)]
            fn tanh_sech2(x: $t) -> ($t, $t) {
                Self::tanh_sech2_with(x, Self::exp_nonpos(-2.0 * x.abs()))
            }

            #[inline(always)]
            fn tanh_sech2_with(x: $t, e: $t) -> ($t, $t) {
                // Below 0.2 the odd Taylor series (ratio of terms ≤ 0.04·0.41); above, (1−e)/(1+e)
                // with e = e^{−2|x|} ≤ 0.67, where 1 − e loses at most 1.6 bits. Both are
                // computed and one is selected, so the loop stays branch-free.
                let a = x.abs();
                let large = (1.0 - e) / (1.0 + e);
                let a2 = a * a;
                let c: &[$t] = &$tanh_coeffs;
                let p = estrin(a2, c);
                let small = a < 0.2;
                let t = if small { a * p } else { large };
                // 1 − t² = (1 − t)(1 + t), and 1 − t = 2e/(1 + e) = e·(1 + t) above 0.2: no
                // cancellation. Below, t² < 0.04 and the subtraction is harmless.
                let u = if small {
                    1.0 - t * t
                } else {
                    e * (1.0 + t) * (1.0 + t)
                };
                (t.copysign(x), u)
            }
        }
    };
}

/// 1/k! for k = 0..=n.
const fn inv_factorials<const N: usize>() -> [f64; N] {
    let mut c = [1.0; N];
    let mut k = 1;
    while k < N {
        c[k] = c[k - 1] / k as f64;
        k += 1;
    }
    c
}

const EXP64: [f64; 14] = inv_factorials::<14>();
const EXP32: [f64; 8] = inv_factorials::<8>();

/// q(t) = ln(1 + e)/e, t = e − ½ ∈ [−½, ½], in f32: the degree-9 Chebyshev interpolant in
/// powers of t, within 0.05·2⁻²³ of q (degree 9 costs the same Estrin depth as 8 and leaves
/// the f32 rounding as nearly all of the error). Reproduce with
/// `Chebyshev.interpolate(lambda t: np.log1p(t + .5) / (t + .5), 9, domain=[-.5, .5])
/// .convert(kind=Polynomial, domain=[-.5, .5], window=[-.5, .5]).coef`.
const LOG1P32: [f32; 10] = [
    0.810_930_2,
    -0.288_527_1,
    0.132_609_02,
    -0.067_688_19,
    0.036_635_234,
    -0.020_563_182,
    0.011_577_685,
    -0.006_788_017,
    0.005_250_270_7,
    -0.003_176_057,
];

/// q as [`LOG1P32`], in f64: the degree-20 polynomial interpolating q at the 21 Chebyshev
/// nodes of [−½, ½], solved in 80-digit decimal arithmetic and rounded to f64
/// (`tools/log1p_coeffs.py` prints them). Within 0.1·2⁻⁵² of q (degree 19 would be 0.5·2⁻⁵²).
/// numpy's float64 `Chebyshev.interpolate` cannot give these: past degree 12 its coefficients
/// are rounding noise.
const LOG1P64: [f64; 21] = [
    0.8109302162163288,
    -0.2885270990993239,
    0.13260975375420375,
    -0.06768864331096429,
    0.036611854523044426,
    -0.020548811919120714,
    0.011833792115498273,
    -0.006945394974985513,
    0.004136178969492579,
    -0.0024918411947988627,
    0.0015153851053375097,
    -0.0009288574279277324,
    0.0005730446084677868,
    -0.00035482048783102383,
    0.00022119170895766566,
    -0.0001421000228999903,
    8.93330340681927e-05,
    -4.4828443252232565e-05,
    2.827808358562655e-05,
    -3.8362374451601246e-05,
    2.443797394858094e-05,
];

const fn narrow<const N: usize>(c: [f64; N]) -> [f32; N] {
    let mut out = [0.0f32; N];
    let mut i = 0;
    while i < N {
        out[i] = c[i] as f32;
        i += 1;
    }
    out
}

/// Taylor coefficients of tanh(x)/x in x²: 2²ⁿ(2²ⁿ−1)B₂ₙ/(2n)!.
const TANH64: [f64; 11] = [
    1.0,
    -1.0 / 3.0,
    2.0 / 15.0,
    -17.0 / 315.0,
    62.0 / 2835.0,
    -1382.0 / 155925.0,
    21844.0 / 6081075.0,
    -929569.0 / 638512875.0,
    6404582.0 / 10854718875.0,
    -443861162.0 / 1856156927625.0,
    18888466084.0 / 194896477400625.0,
];

const fn head<const N: usize>(c: [f64; 11]) -> [f64; N] {
    let mut out = [0.0; N];
    let mut i = 0;
    while i < N {
        out[i] = c[i];
        i += 1;
    }
    out
}

impl_transcendental!(f64, 52, 1023, -708.0, EXP64, TANH64, LOG1P64);
impl_transcendental!(
    f32,
    23,
    127,
    -87.0,
    narrow(EXP32),
    narrow(head::<6>(TANH64)),
    LOG1P32
);

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps64(a: f64, b: f64) -> f64 {
        ((a - b) / b.abs().max(f64::MIN_POSITIVE)).abs() / f64::EPSILON
    }

    #[test]
    fn exp_and_log1p_match_std_f64() {
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..200_000 {
            let x = -700.0 * (i as f64 / 200_000.0).powi(3);
            worst.0 = worst.0.max(ulps64(f64::exp_nonpos(x), x.exp()));
            // log1p over [0, 1] and down to tiny e (std's ln_1p is within 1 ulp).
            for e in [i as f64 / 200_000.0, (-(i as f64) / 300.0).exp()] {
                if e > 0.0 {
                    worst.1 = worst.1.max(ulps64(f64::ln_1p_unit(e), e.ln_1p()));
                }
            }
        }
        assert!(
            worst.0 < 4.0 && worst.1 < 2.0,
            "worst ulps: exp {} log1p {}",
            worst.0,
            worst.1
        );
        assert_eq!(f64::exp_nonpos(0.0), 1.0);
        assert_eq!(f64::ln_1p_unit(0.0), 0.0);
        assert_eq!(f64::exp_nonpos(-1e308), 0.0);
        assert_eq!(f32::exp_nonpos(-1e30), 0.0);
        assert!(f64::ln_1p_unit(1e-300) == 1e-300);
    }

    #[test]
    fn tanh_matches_std() {
        let (mut w64, mut w32) = (0.0f64, 0.0f64);
        for i in 0..400_000 {
            let x = 20.0 * ((i as f64 / 200_000.0) - 1.0).powi(3);
            w64 = w64.max(ulps64(f64::tanh_sech2(x).0, x.tanh()));
            let y = x as f32;
            let rel = ((f32::tanh_sech2(y).0 as f64 - (y as f64).tanh()) / (y as f64).tanh()).abs();
            if y != 0.0 {
                w32 = w32.max(rel / f32::EPSILON as f64);
            }
        }
        assert!(w64 < 8.0 && w32 < 8.0, "worst ulps: f64 {w64}, f32 {w32}");
        assert_eq!(f64::tanh_sech2(0.0).0, 0.0);
        assert_eq!(f64::tanh_sech2(-1e300).0, -1.0);
        assert_eq!(f32::tanh_sech2(1e30).0, 1.0);
    }

    /// 1 − tanh² within 8 ulps of itself everywhere (measured: 3.7 in f64, 3 in f32), tails
    /// included, against
    /// sech² x = 4q/(1 + q)² with q = e^{−2|x|} in f64 (no cancellation there).
    #[test]
    fn sech2_keeps_its_relative_accuracy() {
        let sech2 = |x: f64| {
            let q = (-2.0 * x.abs()).exp();
            4.0 * q / ((1.0 + q) * (1.0 + q))
        };
        let (mut w64, mut w32) = (0.0f64, 0.0f64);
        for i in 0..400_000 {
            let x = 40.0 * ((i as f64 / 200_000.0) - 1.0).powi(3);
            w64 = w64.max(((f64::tanh_sech2(x).1 - sech2(x)) / sech2(x)).abs());
            let y = x as f32;
            let want = sech2(y as f64);
            if want > f32::MIN_POSITIVE as f64 {
                w32 = w32.max(((f32::tanh_sech2(y).1 as f64 - want) / want).abs());
            }
        }
        assert!(
            w64 < 8.0 * f64::EPSILON && w32 < 8.0 * f32::EPSILON as f64,
            "worst relative errors: f64 {w64:e}, f32 {w32:e}"
        );
    }

    #[test]
    fn exp_and_log1p_match_std_f32() {
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..200_000 {
            let x = -85.0 * (i as f32 / 200_000.0).powi(3);
            let rel =
                |a: f32, b: f32| ((a as f64 - b as f64) / b as f64).abs() / f32::EPSILON as f64;
            worst.0 = worst.0.max(rel(f32::exp_nonpos(x), x.exp()));
            // log1p against the exact value (f64), over [0, 1] and down to tiny e.
            for e in [i as f32 / 200_000.0, (-(i as f32) / 2000.0).exp()] {
                if e > 0.0 {
                    let exact = (e as f64).ln_1p();
                    let err = (f32::ln_1p_unit(e) as f64 - exact).abs() / exact;
                    worst.1 = worst.1.max(err / f32::EPSILON as f64);
                }
            }
        }
        assert!(
            worst.0 < 4.0 && worst.1 < 1.5,
            "worst ulps: exp {} log1p {}",
            worst.0,
            worst.1
        );
        assert_eq!(f32::ln_1p_unit(0.0), 0.0);
    }
}
