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

/// |z| beyond which silu's exponentially small factors (σ', σ'' − …, e^{−|z|}) are exactly 0
/// in both float types: `vmath`'s `exp_nonpos` returns 0 below −708 (f64) and −87 (f32).
const SILU_BOUND: f64 = 1e4;

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
                // z multiplies factors that vanish as e^{−|z|}: at z = ±inf (a finite input
                // can overflow a pre-activation) that product is inf·0 = NaN, not its limit 0.
                // Beyond SILU_BOUND those factors are exactly 0 (e underflows first), so
                // bounding z there changes no finite result and gives the limits at ±inf.
                // A comparison, not `max`/`clamp`: a NaN z must stay NaN.
                let bound = T::c(SILU_BOUND);
                let z_lo = if z < -bound { -bound } else { z };
                d.s0 = z_lo * s;
                if N >= 1 {
                    // 1 − s from e and r, as for softplus; 1 − 6s + 6s² = 1 − 6s(1 − s).
                    let sc = if pos { e * r } else { r };
                    let ds = s * sc;
                    let dds = ds * (sc - s);
                    let ddds = ds * (one - T::c(6.0) * ds);
                    let zb = if z > bound { bound } else { z_lo };
                    d.s1 = s + zb * ds;
                    d.s2 = two * ds + zb * dds;
                    d.s3 = T::c(3.0) * dds + zb * ddds;
                }
            }
        }
        // Tanh's σ' comes with σ; the fields above N are zeroed all the same, as documented
        // (N is a constant: these compile away).
        if N < 1 {
            d.s1 = T::zero();
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
    /// Applies σ to the rows (each `n` wide) of `z`: `z ← σ(z + b)`, and `s1 ← σ'(z + b)`
    /// when given (same shape as `z`).
    ///
    /// The loops are branch-free and vectorize; they run in an AVX-512 or AVX2
    /// build of the same code when the CPU has it.
    pub fn apply_rows<T>(act: Activation, z: &mut [T], n: usize, b: &[T], s1: Option<&mut [T]>) => apply_rows_impl
}

multiversion! {
    /// `z ← z + b` and σ, σ', σ'' at it into `out` = `[h, s1, s2]`, and σ''' into `s3` when
    /// given (each shaped like `z`), for the rows (each `n` wide) of `z`. An empty `h` asks
    /// for σ' and σ'' alone (then without `s3`).
    pub fn derivs_rows<T>(act: Activation, z: &mut [T], n: usize, b: &[T], out: [&mut [T]; 3], s3: Option<&mut [T]>) => derivs_rows_impl
}

multiversion! {
    /// `s1 ← σ'(z + b)` for the rows (each `n` wide) of `z`, leaving `z` as it is: the last
    /// hidden layer of a score pass needs the derivative only (for softplus this skips the
    /// logarithm).
    pub fn derivative_rows<T>(act: Activation, z: &[T], n: usize, b: &[T], s1: &mut [T]) => derivative_rows_impl
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

/// Elements per block of the loops below: whole rows when a row is at most this long,
/// otherwise pieces of one row.
const STAGE: usize = 256;

/// Rows narrower than this run as one flat loop per block (see `staged!`).
const FLAT_BELOW: usize = 32;

/// `staged!(act, z, n, b, |start, w, bc, e| body)`: over the rows (each `n` wide) of `z`, in
/// blocks of at most [`STAGE`] elements (several whole rows, or a piece of one row), first
/// computes the exponential of the activation at `z + b` for the whole block in one loop, then
/// runs `body` once per row piece: `start` is the piece's offset in `z`, `w` its length, `bc`
/// the matching piece of `b` and `e` of the exponentials. The body forms `z + b` again: the
/// same value, cheaper than storing it.
///
/// The operations are those of [`Activation::derivs`], so are the bits. Split, each loop
/// body is a dependency chain about half as long (the exponential's polynomial, then the
/// logarithm's or the division's), and the out-of-order window overlaps more elements: the
/// softplus pass alone (the profile example's `act0`/`act1`) took 14–22 % less time than as
/// one loop, in f32 and f64; whole energy and score passes, 2–5 %. Blocks of several rows
/// keep the loops long when rows are short: at width 64, blocks of four rows took ~30 % less
/// time than one row at a time on data in L1, and whole score passes, whose rows come from
/// L2, 2–4 % less.
/// A macro, not a function taking a closure: the body must be compiled inside the
/// multiversioned caller (a closure that is not inlined there runs without FMA, through
/// the C library's `fma`, 20× slower).
macro_rules! staged {
    ($act:ident, $z:expr, $n:expr, $b:expr, |$start:ident, $w:ident, $bc:ident, $e:ident| $body:block) => {{
        let n: usize = $n;
        let n_rows = if n == 0 { 0 } else { $z.len() / n };
        let b: &[T] = &$b[..n];
        let piece = n.clamp(1, STAGE);
        let rows_per_block = STAGE / piece;
        // Uninitialized: zeroing 1–2 KiB per call was ~3 % of a one-point score; every
        // element a body reads is written by the loop just before it.
        let mut e_buf = [std::mem::MaybeUninit::<T>::uninit(); STAGE];
        // Narrow rows: b repeated across a block's rows, so that both loops run over the whole
        // block at once. One row at a time, a loop of fewer elements than a vector or two ran
        // in its scalar remainder (energy at width 7 took 1.5× the time of width 16).
        let flat_rows = if n > 0 && n < FLAT_BELOW { rows_per_block.min(n_rows) } else { 0 };
        let mut b_tiled = [std::mem::MaybeUninit::<T>::uninit(); STAGE];
        for row in b_tiled[..flat_rows * n].chunks_exact_mut(n) {
            for (v, &x) in row.iter_mut().zip(b) {
                *v = std::mem::MaybeUninit::new(x);
            }
        }
        // SAFETY: the loop above wrote the first flat_rows·n elements.
        let b_tiled: &[T] =
            unsafe { std::slice::from_raw_parts(b_tiled.as_ptr().cast::<T>(), flat_rows * n) };
        let mut r0 = 0;
        while flat_rows > 0 && r0 < n_rows {
            let r1 = n_rows.min(r0 + flat_rows);
            let $w = (r1 - r0) * n;
            let $bc = &b_tiled[..$w];
            let zr = &$z[r0 * n..r0 * n + $w];
            for i in 0..$w {
                e_buf[i] = std::mem::MaybeUninit::new($act.exponential(zr[i] + $bc[i]));
            }
            // SAFETY: the loop above wrote the first w elements.
            let $e: &[T] = unsafe { std::slice::from_raw_parts(e_buf.as_ptr().cast::<T>(), $w) };
            let $start = r0 * n;
            $body
            r0 = r1;
        }
        while r0 < n_rows {
            let r1 = n_rows.min(r0 + rows_per_block);
            let mut c0 = 0;
            while c0 < n {
                let c1 = n.min(c0 + piece);
                let $w = c1 - c0;
                let $bc = &b[c0..c1];
                for r in r0..r1 {
                    let zr = &$z[r * n + c0..r * n + c1];
                    let er = &mut e_buf[(r - r0) * $w..(r - r0 + 1) * $w];
                    for i in 0..$w {
                        er[i] = std::mem::MaybeUninit::new($act.exponential(zr[i] + $bc[i]));
                    }
                }
                // SAFETY: the loop above wrote the first (r1 − r0)·w elements.
                let e_all: &[T] = unsafe {
                    std::slice::from_raw_parts(e_buf.as_ptr().cast::<T>(), (r1 - r0) * $w)
                };
                for r in r0..r1 {
                    let $start = r * n + c0;
                    let $e: &[T] = &e_all[(r - r0) * $w..(r - r0 + 1) * $w];
                    $body
                }
                c0 = c1;
            }
            r0 = r1;
        }
    }};
}

#[inline(always)]
fn derivative_rows_impl<T: Real>(act: Activation, z: &[T], n: usize, b: &[T], s1: &mut [T]) {
    let s1 = &mut s1[..z.len()];
    per_activation!(act => staged!(act, z, n, b, |start, w, b, e| {
        let (z, s1) = (&z[start..start + w], &mut s1[start..start + w]);
        for i in 0..w {
            s1[i] = act.derivs_with::<T, 1>(z[i] + b[i], e[i]).s1;
        }
    }))
}

#[inline(always)]
fn apply_rows_impl<T: Real>(act: Activation, z: &mut [T], n: usize, b: &[T], s1: Option<&mut [T]>) {
    match s1 {
        Some(s1) => {
            let s1 = &mut s1[..z.len()];
            per_activation!(act => staged!(act, z, n, b, |start, w, b, e| {
                let (z, s1) = (&mut z[start..start + w], &mut s1[start..start + w]);
                for i in 0..w {
                    let d = act.derivs_with::<T, 1>(z[i] + b[i], e[i]);
                    z[i] = d.s0;
                    s1[i] = d.s1;
                }
            }))
        }
        None => per_activation!(act => staged!(act, z, n, b, |start, w, b, e| {
            let z = &mut z[start..start + w];
            for i in 0..w {
                z[i] = act.derivs_with::<T, 0>(z[i] + b[i], e[i]).s0;
            }
        })),
    }
}

#[inline(always)]
fn derivs_rows_impl<T: Real>(
    act: Activation,
    z: &mut [T],
    n: usize,
    b: &[T],
    out: [&mut [T]; 3],
    s3: Option<&mut [T]>,
) {
    let [h, s1, s2] = out;
    let len = z.len();
    let (s1, s2) = (&mut s1[..len], &mut s2[..len]);
    if h.is_empty() && len > 0 {
        debug_assert!(s3.is_none(), "σ''' is only computed with σ");
        // σ' and σ'' alone (the trace's last layer): the values, softplus's logarithm, are
        // never computed.
        return per_activation!(act => staged!(act, z, n, b, |start, w, b, e| {
            let r = start..start + w;
            let (s1, s2) = (&mut s1[r.clone()], &mut s2[r.clone()]);
            derivs_piece::<T, 2, false>(act, &mut z[r], b, e, &mut [], s1, s2, &mut []);
        }));
    }
    let h = &mut h[..len];
    match s3 {
        Some(s3) => {
            let s3 = &mut s3[..len];
            per_activation!(act => staged!(act, z, n, b, |start, w, b, e| {
                let r = start..start + w;
                let (h, s1, s2) = (&mut h[r.clone()], &mut s1[r.clone()], &mut s2[r.clone()]);
                derivs_piece::<T, 3, true>(act, &mut z[r.clone()], b, e, h, s1, s2, &mut s3[r]);
            }))
        }
        None => per_activation!(act => staged!(act, z, n, b, |start, w, b, e| {
            let r = start..start + w;
            let (h, s1, s2) = (&mut h[r.clone()], &mut s1[r.clone()], &mut s2[r.clone()]);
            derivs_piece::<T, 2, true>(act, &mut z[r], b, e, h, s1, s2, &mut []);
        })),
    }
}

/// The body of [`derivs_rows`] for one row piece, up to σ'' (`N` = 2; `s3` is then empty) or
/// σ''' (`N` = 3). A function of its own so that every slice is a parameter of its own: Rust
/// marks those `noalias`, which survives inlining. Reached through locals, the five written
/// slices and two read ones needed 20 run-time overlap checks, more than LLVM's limit of 8,
/// and the loop ran scalar: 27 % of an S1 f32 hessian_trace, at 2 ns per element.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn derivs_piece<T: Real, const N: u8, const VALUE: bool>(
    act: Activation,
    z: &mut [T],
    b: &[T],
    e: &[T],
    h: &mut [T],
    s1: &mut [T],
    s2: &mut [T],
    s3: &mut [T],
) {
    let w = z.len();
    let (b, e, s1, s2) = (&b[..w], &e[..w], &mut s1[..w], &mut s2[..w]);
    let h = &mut h[..if VALUE { w } else { 0 }];
    let s3 = &mut s3[..if N == 3 { w } else { 0 }];
    for i in 0..w {
        z[i] += b[i];
        let d = act.derivs_with::<T, N>(z[i], e[i]);
        if VALUE {
            h[i] = d.s0;
        }
        s1[i] = d.s1;
        s2[i] = d.s2;
        if N == 3 {
            s3[i] = d.s3;
        }
    }
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
    /// [`Activation::derivs`], for rows shorter than, equal to and longer than a block, and
    /// row counts that do and do not fill the last block.
    #[test]
    fn row_loops_equal_the_scalar_derivatives_bit_for_bit() {
        fn check<T: Real>() {
            let mut s = crate::rng::Stream::new(7, 0);
            for act in Activation::ALL {
                for (n, rows) in [
                    (1, 1),
                    (1, STAGE + 3),
                    (7, 40),
                    (64, 9),
                    (STAGE - 1, 3),
                    (STAGE, 2),
                    (STAGE + 1, 3),
                    (3 * STAGE + 5, 2),
                ] {
                    let len = n * rows;
                    let z: Vec<T> = (0..len)
                        .map(|i| match i % 7 {
                            0 => T::c(40.0 * s.normal()),
                            1 => T::c(1e-3 * s.normal()),
                            _ => T::c(3.0 * s.normal()),
                        })
                        .collect();
                    let b: Vec<T> = (0..n).map(|_| T::c(s.normal())).collect();
                    let want: Vec<Derivs<T>> = z
                        .iter()
                        .enumerate()
                        .map(|(i, &z)| act.derivs::<T, 3>(z + b[i % n]))
                        .collect();
                    let bits = |v: &[T], f: fn(&Derivs<T>) -> T, what: &str| {
                        assert_eq!(v.len(), len);
                        for (i, (x, d)) in v.iter().zip(&want).enumerate() {
                            assert!(
                                x.to_f64_exact().to_bits() == f(d).to_f64_exact().to_bits(),
                                "{act:?} {} n={n} rows={rows} {what}[{i}]: {x} vs {}",
                                T::NAME,
                                f(d)
                            );
                        }
                    };
                    let (mut h, mut s1) = (z.clone(), vec![T::zero(); len]);
                    apply_rows(act, &mut h, n, &b, Some(&mut s1));
                    bits(&h, |d| d.s0, "apply_rows σ");
                    bits(&s1, |d| d.s1, "apply_rows σ'");
                    let mut h0 = z.clone();
                    apply_rows(act, &mut h0, n, &b, None);
                    bits(&h0, |d| d.s0, "apply_rows value");
                    let mut d1 = vec![T::zero(); len];
                    derivative_rows(act, &z, n, &b, &mut d1);
                    bits(&d1, |d| d.s1, "derivative_rows");
                    let mut zz = z.clone();
                    let mut out = vec![vec![T::zero(); len]; 4];
                    let [h, s1, s2, s3] = &mut out[..] else {
                        unreachable!()
                    };
                    derivs_rows(act, &mut zz, n, &b, [h, s1, s2], Some(s3));
                    bits(h, |d| d.s0, "derivs_rows σ");
                    bits(s1, |d| d.s1, "derivs_rows σ'");
                    bits(s2, |d| d.s2, "derivs_rows σ''");
                    bits(s3, |d| d.s3, "derivs_rows σ'''");
                    // Without σ''', the others keep their bits.
                    let mut zz = z.clone();
                    let mut out = vec![vec![T::zero(); len]; 3];
                    let [h, s1, s2] = &mut out[..] else {
                        unreachable!()
                    };
                    derivs_rows(act, &mut zz, n, &b, [h, s1, s2], None);
                    bits(h, |d| d.s0, "derivs_rows (no σ''') σ");
                    bits(s1, |d| d.s1, "derivs_rows (no σ''') σ'");
                    bits(s2, |d| d.s2, "derivs_rows (no σ''') σ''");
                    // Without σ either (the trace's last layer).
                    let mut zz = z.clone();
                    let mut out = vec![vec![T::zero(); len]; 2];
                    let [s1, s2] = &mut out[..] else {
                        unreachable!()
                    };
                    derivs_rows(act, &mut zz, n, &b, [&mut [], s1, s2], None);
                    bits(s1, |d| d.s1, "derivs_rows (no σ) σ'");
                    bits(s2, |d| d.s2, "derivs_rows (no σ) σ''");
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

    /// At z = ±inf (a finite input whose pre-activation overflows) every activation gives the
    /// limits of σ and its derivatives, not NaN; silu's were inf·0 = NaN. In the saturated
    /// range before that, silu's values are already exactly those limits, so bounding z
    /// changes no finite result.
    #[test]
    fn saturated_and_infinite_preactivations_give_the_limits() {
        fn check<T: Real + std::fmt::Debug>(big: &[f64]) {
            let limits = |act: Activation, z: T| -> [T; 4] {
                let (pos, zero, one) = (z > T::zero(), T::zero(), T::one());
                match act {
                    Activation::Softplus | Activation::Silu if pos => [z, one, zero, zero],
                    Activation::Softplus | Activation::Silu => [zero, zero, zero, zero],
                    Activation::Tanh if pos => [one, zero, zero, zero],
                    Activation::Tanh => [-one, zero, zero, zero],
                }
            };
            for act in Activation::ALL {
                for &m in big {
                    for z in [T::c(m), T::c(-m)] {
                        let d = act.derivs::<T, 3>(z);
                        let got = [d.s0, d.s1, d.s2, d.s3];
                        // == also accepts −0 for 0; a NaN fails it.
                        assert_eq!(got, limits(act, z), "{act:?} at {z:?}");
                    }
                }
            }
        }
        check::<f64>(&[800.0, 9999.0, 1e4, 1e5, 1e300, f64::INFINITY]);
        check::<f32>(&[100.0, 9999.0, 1e4, 1e5, 1e30, f64::INFINITY]);
    }

    /// `derivs::<N>` fills the orders up to N, as `derivs::<3>` does, and leaves the higher
    /// ones zero (documented).
    #[test]
    fn higher_orders_than_asked_are_zero() {
        for a in Activation::ALL {
            for z in [-3.0, -0.4, 0.0, 0.7, 5.0] {
                let full = a.derivs::<f64, 3>(z);
                let got = [
                    a.derivs::<f64, 0>(z),
                    a.derivs::<f64, 1>(z),
                    a.derivs::<f64, 2>(z),
                ];
                for (n, d) in got.iter().enumerate() {
                    let want = [full.s0, full.s1, full.s2, full.s3];
                    let have = [d.s0, d.s1, d.s2, d.s3];
                    for k in 0..4 {
                        let w = if k <= n { want[k] } else { 0.0 };
                        assert_eq!(have[k], w, "{a:?} z={z} N={n} order {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_names_list_the_choices() {
        let err = Activation::from_name("relu").unwrap_err().to_string();
        assert!(
            err.contains("'softplus', 'tanh', 'silu'") && err.contains("'relu'"),
            "{err}"
        );
        assert_eq!(Activation::from_name("tanh"), Ok(Activation::Tanh));
        // The ReLU hint is for ReLU alone.
        assert!(err.ends_with("so score matching cannot train it)"), "{err}");
        let err = Activation::from_name("gelu").unwrap_err().to_string();
        assert_eq!(
            err,
            "activation must be one of 'softplus', 'tanh', 'silu', got 'gelu'"
        );
        for a in Activation::ALL {
            assert_eq!(Activation::from_name(a.name()), Ok(a));
        }
    }
}
