//! Every matrix product of the engine goes through this file; it is the only one that names a
//! GEMM backend.
//!
//! Backend: the `gemm` crate (pure Rust, runtime dispatch to its AVX-512 kernels with the
//! `x86-v4` feature, AVX2/FMA and portable paths otherwise), always called with
//! `Parallelism::None`: the engine parallelizes over chunks of rows itself, so a nested thread
//! pool would only oversubscribe the cores. See `benchmarks/gemm_backends.md` for the
//! measurements behind the choice.
//!
//! All operands are contiguous row-major slices. Two shapes occur:
//! - [`Rhs::mul`]: `C (m×n) = A (m×k) · B (k×n)` with a small `B` (a weight matrix or its
//!   transpose) shared by every chunk of a pass, and a tall `A` (a chunk of stacked rows);
//! - [`matmul_tn`]: `C (m×n) += Aᵀ · B` with `A` (r×m), `B` (r×n) tall: the weight gradients.

use crate::real::Real;

/// The right-hand side of the products of one pass: a (k × n) matrix, copied once into the
/// layout the kernel reads fastest and reused for every chunk and thread.
#[derive(Debug, Clone)]
pub struct Rhs<T> {
    k: usize,
    n: usize,
    data: Vec<T>,
}

impl<T: Real> Rhs<T> {
    /// `B = W` for a row-major `w` of shape (k, n).
    pub fn new(w: &[T], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        Rhs {
            k,
            n,
            data: w.to_vec(),
        }
    }

    /// `B = Wᵀ` for a row-major `w` of shape (n, k).
    pub fn transposed(w: &[T], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), k * n);
        let mut data = vec![T::zero(); k * n];
        for i in 0..n {
            for j in 0..k {
                data[j * n + i] = w[i * k + j];
            }
        }
        Rhs { k, n, data }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// `c = a · B` (`accumulate = false`) or `c += a · B`, with `a` (m × k) and `c` (m × n).
    #[inline]
    pub fn mul(&self, a: &[T], c: &mut [T], accumulate: bool) {
        let (k, n) = (self.k, self.n);
        let m = if k == 0 {
            c.len() / n.max(1)
        } else {
            a.len() / k
        };
        assert!(a.len() == m * k && c.len() == m * n);
        // SAFETY: the assertions above bound every access of the row-major operands.
        unsafe {
            raw(
                m,
                n,
                k,
                c.as_mut_ptr(),
                n as isize,
                1,
                accumulate,
                a.as_ptr(),
                k as isize,
                1,
                self.data.as_ptr(),
                n as isize,
                1,
            );
        }
    }
}

/// `c += aᵀ · b` with `a` (r × m), `b` (r × n), `c` (m × n), all row-major.
#[inline]
pub fn matmul_tn<T: Real>(a: &[T], b: &[T], c: &mut [T], m: usize, n: usize) {
    let r = if m == 0 { 0 } else { a.len() / m };
    assert!(a.len() == r * m && b.len() == r * n && c.len() == m * n);
    // SAFETY: the assertion bounds every access; aᵀ is read through swapped strides.
    unsafe {
        raw(
            m,
            n,
            r,
            c.as_mut_ptr(),
            n as isize,
            1,
            true,
            a.as_ptr(),
            1,
            m as isize,
            b.as_ptr(),
            n as isize,
            1,
        );
    }
}

/// `dst = [dst +] lhs · rhs` with explicit row and column strides.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn raw<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: *const T,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const T,
    rhs_rs: isize,
    rhs_cs: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs,
        dst_rs,
        accumulate,
        lhs,
        lhs_cs,
        lhs_rs,
        rhs,
        rhs_cs,
        rhs_rs,
        T::one(),
        T::one(),
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_match_the_naive_loop() {
        let (m, k, n) = (37, 13, 29);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 % 11) as f64) - 5.0).collect();
        let w: Vec<f64> = (0..k * n)
            .map(|i| ((i * 5 % 13) as f64) * 0.5 - 3.0)
            .collect();
        let want = naive(&a, &w, m, k, n);
        let mut c = vec![1.0; m * n];
        Rhs::new(&w, k, n).mul(&a, &mut c, false);
        assert_eq!(c, want);
        // Wᵀ given as the (n × k) matrix it transposes.
        let wt: Vec<f64> = (0..n)
            .flat_map(|j| (0..k).map(move |p| (p, j)))
            .map(|(p, j)| w[p * n + j])
            .collect();
        let mut c2 = want.clone();
        Rhs::transposed(&wt, n, k).mul(&a, &mut c2, true);
        assert!(c2.iter().zip(&want).all(|(x, y)| *x == 2.0 * y));
        // aᵀ b against the naive loop on the explicit transpose.
        let at: Vec<f64> = (0..k)
            .flat_map(|p| (0..m).map(move |i| (i, p)))
            .map(|(i, p)| a[i * k + p])
            .collect();
        let b: Vec<f64> = (0..m * n).map(|i| (i % 7) as f64).collect();
        let mut c3 = vec![0.0; k * n];
        matmul_tn(&a, &b, &mut c3, k, n);
        assert_eq!(c3, naive(&at, &b, k, m, n));
    }
}
