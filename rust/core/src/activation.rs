//! Activations and their first three derivatives.
//!
//! Third derivatives enter the ISM parameter gradient, so only C³ activations exist here.

use crate::error::{Error, Result};
use crate::real::Real;
use crate::simd::multiversion;

/// A hidden-layer nonlinearity σ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// σ(z) = log(1 + eᶻ).
    Softplus,
    /// σ(z) = tanh z.
    Tanh,
    /// σ(z) = z · sigmoid(z) (also called swish).
    Silu,
}

/// σ and its derivatives at one point; which fields are filled depends on the call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Derivs<T> {
    pub s0: T,
    pub s1: T,
    pub s2: T,
    pub s3: T,
}

impl Activation {
    /// Every activation, in the order error messages list them.
    pub const ALL: [Activation; 3] = [Activation::Softplus, Activation::Tanh, Activation::Silu];

    /// The name used by the Python API.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Softplus => "softplus",
            Activation::Tanh => "tanh",
            Activation::Silu => "silu",
        }
    }

    /// Parses a name; an unknown one is an error that lists the choices.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                let choices: Vec<_> = Self::ALL.iter().map(|a| format!("'{}'", a.name())).collect();
                let hint = if name == "relu" {
                    " (ReLU is not C^3: its Hessian vanishes almost everywhere, so score matching cannot train it)"
                } else {
                    ""
                };
                Error::Value(format!(
                    "activation must be one of {}, got '{name}'{hint}",
                    choices.join(", ")
                ))
            })
    }

    /// σ and its derivatives up to order `N` (0 ≤ N ≤ 3); higher fields are left zero.
    ///
    /// Each activation shares one exponential between all orders.
    #[inline(always)]
    pub fn derivs<T: Real, const N: u8>(self, z: T) -> Derivs<T> {
        self.derivs_with::<T, N>(z, self.exponential(z))
    }

    /// The one exponential σ and its derivatives are built on: e^{−2|z|} for tanh, e^{−|z|}
    /// for the others (never overflows).
    #[inline(always)]
    pub fn exponential<T: Real>(self, z: T) -> T {
        match self {
            Activation::Tanh => T::exp_nonpos(T::c(-2.0) * z.abs()),
            Activation::Softplus | Activation::Silu => T::exp_nonpos(-z.abs()),
        }
    }

    /// [`Activation::derivs`] given `e = self.exponential(z)`.
    #[inline(always)]
    pub fn derivs_with<T: Real, const N: u8>(self, z: T, e: T) -> Derivs<T> {
        let one = T::one();
        let two = T::c(2.0);
        let mut d = Derivs::default();
        match self {
            Activation::Softplus => {
                // log1p(e^-|z|) never overflows; the sigmoid comes from the same exponential.
                d.s0 = z.max(T::zero()) + T::ln_1p_unit(e);
                if N == 0 {
                    // The value alone (energies) needs no sigmoid, hence no division.
                    return d;
                }
                let r = one / (one + e);
                {
                    // s = σ(z) and its complement 1 − s = σ(−z), each from e and r: for large
                    // z, 1 − s by subtraction would keep only the ulps of s (σ'' at z = 15
                    // was 17 % off in f32, and 0 at z = 30).
                    let pos = z >= T::zero();
                    let s = if pos { r } else { e * r };
                    let sc = if pos { e * r } else { r };
                    d.s1 = s;
                    let ds = s * sc;
                    d.s2 = ds;
                    d.s3 = ds * (sc - s);
                }
            }
            Activation::Tanh => {
                let (t, u) = T::tanh_sech2_with(z, e);
                d.s0 = t;
                d.s1 = u;
                d.s2 = -two * t * u;
                d.s3 = -two * u * (one - T::c(3.0) * t * t);
            }
            Activation::Silu => {
                let r = one / (one + e);
                let pos = z >= T::zero();
                let s = if pos { r } else { e * r };
                d.s0 = z * s;
                if N >= 1 {
                    // 1 − s from e and r, as for softplus; 1 − 6s + 6s² = 1 − 6s(1 − s).
                    let sc = if pos { e * r } else { r };
                    let ds = s * sc;
                    let dds = ds * (sc - s);
                    let ddds = ds * (one - T::c(6.0) * ds);
                    d.s1 = s + z * ds;
                    d.s2 = two * ds + z * dds;
                    d.s3 = T::c(3.0) * dds + z * ddds;
                }
            }
        }
        if N < 2 {
            d.s2 = T::zero();
        }
        if N < 3 {
            d.s3 = T::zero();
        }
        d
    }
}

multiversion! {
    /// Applies σ to one row of pre-activations: `z ← σ(z + b)`, and `s1 ← σ'(z + b)` when given.
///
    /// The loops are branch-free and vectorize; they run in an AVX-512 or AVX2
/// build of the same code when the CPU has it.
    pub fn apply_row<T>(act: Activation, z: &mut [T], b: &[T], s1: Option<&mut [T]>) => apply_row_impl
}

multiversion! {
    /// `z ← z + b` and σ, σ', σ'', σ''' at it into `h, s1, s2, s3`, for one row.
    pub fn derivs_row<T>(act: Activation, z: &mut [T], b: &[T], h: &mut [T], s1: &mut [T], s2: &mut [T], s3: &mut [T]) => derivs_row_impl
}

/// Runs `$body` with `$act` replaced by a constant, so that each loop is compiled (and
/// vectorized) for one activation with the `match` hoisted out of it.
macro_rules! per_activation {
    ($act:ident => $body:expr) => {
        match $act {
            Activation::Softplus => {
                let $act = Activation::Softplus;
                $body
            }
            Activation::Tanh => {
                let $act = Activation::Tanh;
                $body
            }
            Activation::Silu => {
                let $act = Activation::Silu;
                $body
            }
        }
    };
}

multiversion! {
    /// `s1 ← σ'(z + b)` for one row, leaving `z` as it is: the last hidden layer of a score
    /// pass needs the derivative only (for softplus this skips the logarithm).
    pub fn derivative_row<T>(act: Activation, z: &[T], b: &[T], s1: &mut [T]) => derivative_row_impl
}

/// Elements per block of the row loops below.
const STAGE: usize = 64;

/// `staged!(act, chunks, b, |start, zc, bc, e| body)`: for each block `zc` of at most
/// [`STAGE`] elements of a row (`chunks` is `z.chunks(STAGE)` or `z.chunks_mut(STAGE)`),
/// starting at `start`, with `bc` the same block of `b`, computes `e ←` the exponential of
/// the activation at `zc + bc` in one loop, then runs `body` (a second loop over the block,
/// which forms `zc + bc` again: the same value, cheaper than storing it).
///
/// The operations are those of [`Activation::derivs`], so are the bits. Split, each loop
/// body is a dependency chain about half as long (the exponential's polynomial, then the
/// logarithm's or the division's), and the out-of-order window overlaps more elements: the
/// softplus pass alone (the profile example's `act0`/`act1`) took 14–22 % less time than as
/// one loop, in f32 and f64; whole energy and score passes, 2–5 %.
/// A macro, not a function taking a closure: the body must be compiled inside the
/// multiversioned caller (a closure that is not inlined there runs without FMA, through
/// the C library's `fma`, 20× slower).
macro_rules! staged {
    ($act:ident, $chunks:expr, $b:expr, |$start:ident, $zc:ident, $bc:ident, $e:ident| $body:block) => {{
        let mut e_buf = [T::zero(); STAGE];
        for (blk, ($zc, $bc)) in $chunks.zip($b.chunks(STAGE)).enumerate() {
            let m = $zc.len();
            let ($e, $bc) = (&mut e_buf[..m], &$bc[..m]);
            for i in 0..m {
                $e[i] = $act.exponential($zc[i] + $bc[i]);
            }
            let $start = blk * STAGE;
            let $e: &[T] = $e;
            $body
        }
    }};
}

#[inline(always)]
fn derivative_row_impl<T: Real>(act: Activation, z: &[T], b: &[T], s1: &mut [T]) {
    let n = z.len();
    let (b, s1) = (&b[..n], &mut s1[..n]);
    per_activation!(act => staged!(act, z.chunks(STAGE), b, |start, z, b, e| {
        let s1 = &mut s1[start..start + z.len()];
        for i in 0..z.len() {
            s1[i] = act.derivs_with::<T, 1>(z[i] + b[i], e[i]).s1;
        }
    }))
}

#[inline(always)]
fn apply_row_impl<T: Real>(act: Activation, z: &mut [T], b: &[T], s1: Option<&mut [T]>) {
    let n = z.len();
    let b = &b[..n];
    match s1 {
        Some(s1) => {
            let s1 = &mut s1[..n];
            per_activation!(act => staged!(act, z.chunks_mut(STAGE), b, |start, z, b, e| {
                let m = z.len();
                let (e, s1) = (&e[..m], &mut s1[start..start + m]);
                for i in 0..m {
                    let d = act.derivs_with::<T, 1>(z[i] + b[i], e[i]);
                    z[i] = d.s0;
                    s1[i] = d.s1;
                }
            }))
        }
        None => per_activation!(act => staged!(act, z.chunks_mut(STAGE), b, |_start, z, b, e| {
            let e = &e[..z.len()];
            for i in 0..z.len() {
                z[i] = act.derivs_with::<T, 0>(z[i] + b[i], e[i]).s0;
            }
        })),
    }
}

#[inline(always)]
fn derivs_row_impl<T: Real>(
    act: Activation,
    z: &mut [T],
    b: &[T],
    h: &mut [T],
    s1: &mut [T],
    s2: &mut [T],
    s3: &mut [T],
) {
    let n = z.len();
    let (b, h, s1, s2, s3) = (
        &b[..n],
        &mut h[..n],
        &mut s1[..n],
        &mut s2[..n],
        &mut s3[..n],
    );
    per_activation!(act => staged!(act, z.chunks_mut(STAGE), b, |start, z, b, e| {
        let m = z.len();
        let r = start..start + m;
        let (e, h, s1, s2, s3) = (
            &e[..m],
            &mut h[r.clone()],
            &mut s1[r.clone()],
            &mut s2[r.clone()],
            &mut s3[r],
        );
        for i in 0..m {
            z[i] += b[i];
            let d = act.derivs_with::<T, 3>(z[i], e[i]);
            h[i] = d.s0;
            s1[i] = d.s1;
            s2[i] = d.s2;
            s3[i] = d.s3;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each derivative against a central difference of the one below it.
    #[test]
    fn derivatives_match_finite_differences() {
        let h = 1e-5;
        for act in Activation::ALL {
            for &z in &[-30.0, -3.1, -0.7, 0.0, 0.4, 2.2, 25.0] {
                let p = act.derivs::<f64, 3>(z + h);
                let m = act.derivs::<f64, 3>(z - h);
                let d = act.derivs::<f64, 3>(z);
                let fd1 = (p.s0 - m.s0) / (2.0 * h);
                let fd2 = (p.s1 - m.s1) / (2.0 * h);
                let fd3 = (p.s2 - m.s2) / (2.0 * h);
                assert!(
                    (fd1 - d.s1).abs() < 1e-8,
                    "{act:?} s1 at {z}: {fd1} vs {}",
                    d.s1
                );
                assert!(
                    (fd2 - d.s2).abs() < 1e-8,
                    "{act:?} s2 at {z}: {fd2} vs {}",
                    d.s2
                );
                assert!(
                    (fd3 - d.s3).abs() < 1e-8,
                    "{act:?} s3 at {z}: {fd3} vs {}",
                    d.s3
                );
            }
        }
    }

    /// σ'' and σ''' keep their relative accuracy in the saturated tails, where they are
    /// O(e^{−|z|}) (tanh: O(e^{−2|z|})), against closed forms in f64 (f32: from the f32-rounded
    /// z).
    #[test]
    fn higher_derivatives_keep_relative_accuracy_in_the_tails() {
        fn exact(act: Activation, z: f64) -> (f64, f64) {
            // s = σ(z), q = 1 − s = σ(−z), both without cancellation.
            let (s, q) = (1.0 / (1.0 + (-z).exp()), 1.0 / (1.0 + z.exp()));
            let ds = s * q;
            match act {
                Activation::Softplus => (ds, ds * (q - s)),
                Activation::Silu => {
                    let dds = ds * (q - s);
                    let ddds = ds * (1.0 - 6.0 * ds);
                    (2.0 * ds + z * dds, 3.0 * dds + z * ddds)
                }
                Activation::Tanh => {
                    // sech² z = 4q/(1 + q)², q = e^{−2|z|}; t = tanh z.
                    let q = (-2.0 * z.abs()).exp();
                    let (u, t) = (4.0 * q / ((1.0 + q) * (1.0 + q)), z.tanh());
                    (-2.0 * t * u, -2.0 * u * (1.0 - 3.0 * t * t))
                }
            }
        }
        let rel = |a: f64, b: f64| ((a - b) / b).abs();
        for act in Activation::ALL {
            for &z in &[-60.0, -30.0, -15.0, 15.0, 30.0, 60.0] {
                let (s2, s3) = exact(act, z);
                let d = act.derivs::<f64, 3>(z);
                assert!(
                    rel(d.s2, s2) < 1e-13,
                    "{act:?} f64 s2 at {z}: {} vs {s2}",
                    d.s2
                );
                assert!(
                    rel(d.s3, s3) < 1e-13,
                    "{act:?} f64 s3 at {z}: {} vs {s3}",
                    d.s3
                );
                let z32 = z as f32;
                let (s2, s3) = exact(act, z32 as f64);
                if s2.abs() < f32::MIN_POSITIVE as f64 {
                    continue; // below f32's normal range (tanh at |z| = 60)
                }
                let d = act.derivs::<f32, 3>(z32);
                assert!(
                    rel(d.s2 as f64, s2) < 1e-5,
                    "{act:?} f32 s2 at {z}: {} vs {s2}",
                    d.s2
                );
                assert!(
                    rel(d.s3 as f64, s3) < 1e-5,
                    "{act:?} f32 s3 at {z}: {} vs {s3}",
                    d.s3
                );
            }
        }
    }

    /// The row loops (staged in blocks, multiversioned) give the bits of the scalar
    /// [`Activation::derivs`], for rows shorter than, equal to and longer than a block.
    #[test]
    fn row_loops_equal_the_scalar_derivatives_bit_for_bit() {
        fn check<T: Real>() {
            let mut s = crate::rng::Stream::new(7, 0);
            for act in Activation::ALL {
                for n in [1, 7, STAGE - 1, STAGE, STAGE + 1, 3 * STAGE + 5] {
                    let z: Vec<T> = (0..n)
                        .map(|i| match i % 7 {
                            0 => T::c(40.0 * s.normal()),
                            1 => T::c(1e-3 * s.normal()),
                            _ => T::c(3.0 * s.normal()),
                        })
                        .collect();
                    let b: Vec<T> = (0..n).map(|_| T::c(s.normal())).collect();
                    let want: Vec<Derivs<T>> = z
                        .iter()
                        .zip(&b)
                        .map(|(&z, &b)| act.derivs::<T, 3>(z + b))
                        .collect();
                    let bits = |v: &[T], f: fn(&Derivs<T>) -> T, what: &str| {
                        for (i, (x, d)) in v.iter().zip(&want).enumerate() {
                            assert!(
                                x.to_f64_exact().to_bits() == f(d).to_f64_exact().to_bits(),
                                "{act:?} {} n={n} {what}[{i}]: {x} vs {}",
                                T::NAME,
                                f(d)
                            );
                        }
                    };
                    let (mut h, mut s1) = (z.clone(), vec![T::zero(); n]);
                    apply_row(act, &mut h, &b, Some(&mut s1));
                    bits(&h, |d| d.s0, "apply_row σ");
                    bits(&s1, |d| d.s1, "apply_row σ'");
                    let mut h0 = z.clone();
                    apply_row(act, &mut h0, &b, None);
                    bits(&h0, |d| d.s0, "apply_row value");
                    let mut d1 = vec![T::zero(); n];
                    derivative_row(act, &z, &b, &mut d1);
                    bits(&d1, |d| d.s1, "derivative_row");
                    let mut zz = z.clone();
                    let mut out = vec![vec![T::zero(); n]; 4];
                    let [h, s1, s2, s3] = &mut out[..] else {
                        unreachable!()
                    };
                    derivs_row(act, &mut zz, &b, h, s1, s2, s3);
                    bits(h, |d| d.s0, "derivs_row σ");
                    bits(s1, |d| d.s1, "derivs_row σ'");
                    bits(s2, |d| d.s2, "derivs_row σ''");
                    bits(s3, |d| d.s3, "derivs_row σ'''");
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn softplus_is_stable_at_extremes() {
        let a = Activation::Softplus;
        assert_eq!(a.derivs::<f64, 0>(1000.0).s0, 1000.0);
        assert_eq!(a.derivs::<f64, 0>(-1000.0).s0, 0.0);
        assert!((a.derivs::<f64, 0>(0.0).s0 - std::f64::consts::LN_2).abs() < 1e-15);
        assert!(a.derivs::<f32, 0>(100.0).s0.is_finite());
    }

    #[test]
    fn unknown_names_list_the_choices() {
        let err = Activation::from_name("relu").unwrap_err().to_string();
        assert!(
            err.contains("'softplus', 'tanh', 'silu'") && err.contains("'relu'"),
            "{err}"
        );
        assert_eq!(Activation::from_name("tanh"), Ok(Activation::Tanh));
    }
}
