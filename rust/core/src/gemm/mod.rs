//! Every matrix product of the engine goes through this module; it is the only place that
//! knows how a GEMM is computed.
//!
//! Backend: our own packed kernel (`kernel.rs`, `x86.rs`), not a GEMM crate. Why, measured in
//! `benchmarks/gemm_backends.md` (`cargo bench -p scorematch-core --bench gemm --features compare-backends`):
//! - the weight matrix is small and the same for every chunk and thread of a pass, so it is
//!   packed into the kernel's column panels once, in [`Rhs::new`], instead of on every call as
//!   faer, `gemm` and matrixmultiply do;
//! - every output element is one sequential FMA chain over `k`, in every code path, so a row's
//!   result depends only on that row and on `B`: never on how many rows a chunk holds or where
//!   the row sits in it (the crates' edge kernels and blockings give no such promise), and the
//!   AVX2 and AVX-512 paths agree bit for bit;
//! - with that, on the machine measured (AMD EPYC Zen 3, AVX2 + FMA; the AVX-512 path could not
//!   be timed there) it matches or beats the best crate on our `mul` shapes and stays within
//!   ~5 % of it on `matmul_tn`, at 95–140 % of numpy/OpenBLAS single-thread.
//!
//! Paths, chosen at run time once per process ([`backend`]): AVX-512F (12 × 32 f32 tiles,
//! 12 × 16 when `B` has at most 16 columns), AVX2 + FMA (6 × 16, or 6 × 8), and a portable
//! loop (same chain, vectorized by the compiler) for every other CPU. `SCOREMATCH_GEMM=portable|avx2|avx512` caps the choice, for benchmarks; it never
//! selects an instruction set the CPU lacks. Never `target-cpu=native`: the wheel must run
//! anywhere. No threads here: the engine parallelizes over chunks of rows itself.
//!
//! All operands are contiguous row-major slices. Two shapes occur:
//! - [`Rhs::mul`]: `C (m×n) = A (m×k) · B (k×n)` with a small `B` (a weight matrix or its
//!   transpose) shared by every chunk of a pass, and a tall `A` (a chunk of stacked rows);
//! - [`matmul_tn`]: `C (m×n) += Aᵀ · B` with `A` (r×m), `B` (r×n) tall: the weight gradients.

mod kernel;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::any::TypeId;
use std::cell::RefCell;
use std::sync::OnceLock;

use crate::real::Real;
use kernel::Operands;

/// The instruction set a product runs on, in increasing order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// The AVX-512 geometry (12-row tiles, 2-zmm panels) on plain arrays, for the tests: the
    /// development and CI machines lack AVX-512, so its blocked loops run only this way there.
    #[cfg(test)]
    Emulated512,
}

impl Isa {
    /// The best path this CPU supports.
    fn best_supported() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Every path this CPU supports (for tests).
    #[cfg(test)]
    fn all_supported() -> Vec<Isa> {
        let best = Isa::best_supported();
        let all = [
            Isa::Portable,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512,
        ];
        let mut paths: Vec<Isa> = all.into_iter().filter(|&i| i <= best).collect();
        paths.push(Isa::Emulated512);
        paths
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
            #[cfg(test)]
            Isa::Emulated512 => "emulated-avx512",
        }
    }

    /// Rows of the register tile on this path; 0 = no tiles (portable).
    fn mr(self) -> usize {
        match self {
            Isa::Portable => 0,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::MR_AVX2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::MR_AVX512,
            #[cfg(test)]
            Isa::Emulated512 => tests::EMU_MR,
        }
    }

    /// Width of the column panels of packed `B` with `n` columns on this path (see
    /// `kernel::panel_vectors`); 0 = plain row-major.
    fn nr<T>(self, n: usize) -> usize {
        let lanes = match self {
            Isa::Portable => return 0,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::lanes_avx2(std::mem::size_of::<T>()),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::lanes_avx512(std::mem::size_of::<T>()),
            #[cfg(test)]
            Isa::Emulated512 => 64 / std::mem::size_of::<T>(),
        };
        lanes * kernel::panel_vectors(n, lanes)
    }
}

/// The path of this process: detected once, optionally capped by `SCOREMATCH_GEMM`.
fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        capped(
            Isa::best_supported(),
            std::env::var("SCOREMATCH_GEMM").ok().as_deref(),
        )
    })
}

/// `best` capped by the value of `SCOREMATCH_GEMM`: never above `best`, and an unknown or
/// absent value (`"avx512"` included) leaves it as it is.
fn capped(best: Isa, wanted: Option<&str>) -> Isa {
    match wanted {
        Some("portable") => Isa::Portable,
        #[cfg(target_arch = "x86_64")]
        Some("avx2") => best.min(Isa::Avx2),
        _ => best,
    }
}

/// The name of the GEMM path this process uses: `"avx512"`, `"avx2"` or `"portable"`.
pub fn backend() -> &'static str {
    isa().name()
}

/// Runs the blocked product for `T` ∈ {f32, f64} on `isa`.
///
/// # Safety
/// `o` satisfies the contract of `kernel::drive` (or `drive_portable` when `isa` is
/// [`Isa::Portable`]), `B` packed for `isa`, and the CPU supports `isa`.
unsafe fn run<T: Real>(isa: Isa, o: &Operands<T>) {
    macro_rules! go {
        ($t:ty, $avx2:ident, $avx512:ident) => {{
            // SAFETY: T is $t (TypeId checked by the caller), so this is the same type.
            let o = unsafe { &*(o as *const Operands<T> as *const Operands<$t>) };
            match isa {
                // SAFETY: forwarded contract.
                Isa::Portable => unsafe { kernel::drive_portable(o) },
                // SAFETY: forwarded contract; `isa` was detected on this CPU.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { x86::$avx2(o) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { x86::$avx512(o) },
                // SAFETY: forwarded contract; plain Rust, no CPU feature needed.
                #[cfg(test)]
                Isa::Emulated512 => unsafe {
                    kernel::drive_panels::<
                        tests::Emu<$t, { 64 / std::mem::size_of::<$t>() }>,
                        { tests::EMU_MR },
                    >(o)
                },
            }
        }};
    }
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        go!(f32, avx2_f32, avx512_f32)
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        go!(f64, avx2_f64, avx512_f64)
    } else {
        unreachable!("Real is sealed to f32 and f64")
    }
}

/// Values in `isa`'s layout of a (k × n) matrix: column panels padded to the panel width, or
/// plain row-major for the portable path (`None`: more than `usize` holds).
fn layout_len<T: Real>(isa: Isa, k: usize, n: usize) -> Option<usize> {
    let nr = isa.nr::<T>(n);
    let cols = if nr == 0 {
        n
    } else {
        n.div_ceil(nr).checked_mul(nr)?
    };
    cols.checked_mul(k)
}

/// Lays out the (k × n) matrix whose element (p, j) is `at(p, j)` for `isa` into `dst`:
/// column panels, or plain row-major for the portable path. Reuses `dst`'s allocation when
/// the shape is unchanged, writing each element once (a training step lays out every weight
/// matrix again).
fn layout_into<T: Real>(
    isa: Isa,
    dst: &mut Vec<T>,
    k: usize,
    n: usize,
    at: impl Fn(usize, usize) -> T,
) {
    let nr = isa.nr::<T>(n);
    if nr == 0 || k == 0 || n == 0 {
        dst.clear();
        dst.extend(
            (0..k)
                .flat_map(|p| (0..n).map(move |j| (p, j)))
                .map(|(p, j)| at(p, j)),
        );
        return;
    }
    // Panel `jp` holds B[p, jp·nr + j] at jp·k·nr + p·nr + j, zero past column n: the
    // layout of `kernel::pack`, which lays out the per-call operands of `matmul_tn` faster.
    let len = layout_len::<T>(isa, k, n).expect("a layout whose size fits usize");
    dst.resize(len, T::zero());
    for (jp, panel) in dst.chunks_exact_mut(k * nr).enumerate() {
        for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                let col = jp * nr + j;
                *x = if col < n { at(p, col) } else { T::zero() };
            }
        }
    }
}

/// The right-hand side of the products of one pass: a (k × n) matrix, copied once into the
/// layout the kernel reads fastest and reused for every chunk and thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Rhs<T> {
    k: usize,
    n: usize,
    isa: Isa,
    pub(crate) data: Vec<T>,
}

impl<T: Real> Rhs<T> {
    /// `B = W` for a row-major `w` of shape (k, n).
    pub fn new(w: &[T], k: usize, n: usize) -> Self {
        Self::with_isa(isa(), w, k, n)
    }

    fn with_isa(isa: Isa, w: &[T], k: usize, n: usize) -> Self {
        let mut rhs = Rhs {
            k,
            n,
            isa,
            data: Vec::new(),
        };
        rhs.set(w);
        rhs
    }

    /// Bytes of the layout of a (k × n) matrix on this CPU (`None`: more than `usize` holds).
    pub fn bytes(k: usize, n: usize) -> Option<usize> {
        layout_len::<T>(isa(), k, n)?.checked_mul(std::mem::size_of::<T>())
    }

    /// `B = Wᵀ` for a row-major `w` of shape (n, k).
    pub fn transposed(w: &[T], n: usize, k: usize) -> Self {
        let mut rhs = Rhs {
            k,
            n,
            isa: isa(),
            data: Vec::new(),
        };
        rhs.set_transposed(w);
        rhs
    }

    /// Lays out new values of the same shape: `B = W`, `w` row-major (k, n). Allocates
    /// nothing (a training step re-lays every weight matrix).
    pub fn set(&mut self, w: &[T]) {
        let (k, n) = (self.k, self.n);
        assert_eq!(Some(w.len()), k.checked_mul(n));
        layout_into(self.isa, &mut self.data, k, n, |p, j| w[p * n + j]);
    }

    /// As [`Rhs::set`], with `B = Wᵀ` for `w` row-major (n, k).
    pub fn set_transposed(&mut self, w: &[T]) {
        let (k, n) = (self.k, self.n);
        assert_eq!(Some(w.len()), k.checked_mul(n));
        layout_into(self.isa, &mut self.data, k, n, |p, j| w[j * k + p]);
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// `c = a · B` (`accumulate = false`) or `c += a · B`, with `a` (m × k) and `c` (m × n).
    ///
    /// Row `i` of `c` depends only on row `i` of `a` (and of `c` when accumulating) and on
    /// `B`: the same bits whatever `m` is. Allocates nothing.
    #[inline]
    pub fn mul(&self, a: &[T], c: &mut [T], accumulate: bool) {
        let (k, n) = (self.k, self.n);
        let m = a.len().checked_div(k).unwrap_or(c.len() / n.max(1));
        // Checked products: a wrapped `m * n` would pass for a `c` too short, and the kernel
        // writes through raw pointers.
        assert!(a.len() == m * k && Some(c.len()) == m.checked_mul(n));
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                c.fill(T::zero());
            }
            return;
        }
        let o = Operands {
            m,
            n,
            k,
            a: a.as_ptr(),
            tile: k,
            rsa: k,
            csa: 1,
            b: self.data.as_ptr(),
            c: c.as_mut_ptr(),
            accumulate,
        };
        // SAFETY: the assertion bounds `a` (m×k, row-major) and `c` (m×n); `self.data` was laid
        // out for `self.isa` by `layout`, which this CPU supports; `c` is a unique borrow.
        unsafe { run(self.isa, &o) }
    }
}

thread_local! {
    /// Packed operands of [`matmul_tn`], kept per thread so that the hot loop allocates
    /// only when a larger shape first appears. `u64` items: aligned for f32 and f64 alike.
    static TN_PACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// `c += aᵀ · b` with `a` (r × m), `b` (r × n), `c` (m × n), all row-major.
#[inline]
pub fn matmul_tn<T: Real>(a: &[T], b: &[T], c: &mut [T], m: usize, n: usize) {
    tn_with_isa(isa(), a, b, c, m, n);
}

fn tn_with_isa<T: Real>(isa: Isa, a: &[T], b: &[T], c: &mut [T], m: usize, n: usize) {
    let r = a.len().checked_div(m).unwrap_or(0);
    // `r * m` ≤ `a.len()`; the other two products are checked: wrapped, they would pass for
    // `b` and `c` too short, and the kernel writes through raw pointers.
    assert!(
        a.len() == r * m && Some(b.len()) == r.checked_mul(n) && Some(c.len()) == m.checked_mul(n)
    );
    if m == 0 || n == 0 || r == 0 {
        return;
    }
    let (mr, nr) = (isa.mr(), isa.nr::<T>(n));
    if nr == 0 {
        // The portable path reads aᵀ in place (element (i, p) is a[p·m + i]) and `b` as is.
        let o = Operands {
            m,
            n,
            k: r,
            a: a.as_ptr(),
            tile: 1,
            rsa: 1,
            csa: m,
            b: b.as_ptr(),
            c: c.as_mut_ptr(),
            accumulate: true,
        };
        // SAFETY: the assertion bounds `a`, `b` (row-major, as the portable path reads it)
        // and `c`; `c` is a unique borrow.
        unsafe { run(isa, &o) };
        return;
    }
    // `b` is always packed per call: its rows are a power-of-two apart in our shapes, so a
    // column panel read in place would crowd a few L1 sets. aᵀ is packed into register-tile
    // rows when rows of `a` are longer than 512 bytes; shorter ones are read in place, where
    // the copy costs more than it saves (measured: S1's 512 × 64 gradient, f32, 65 → 85
    // GFLOP/s in place; S3's 528 × 256, f64, 28 → 40 packed). The copies cost O(r·(m + n))
    // against O(r·m·n); both read `a` and `b` in the same order, so the result is the same.
    let pack_a = m * std::mem::size_of::<T>() > 512;
    let a_len = if pack_a { m.div_ceil(mr) * r * mr } else { 0 };
    let b_len = n.div_ceil(nr) * r * nr;
    TN_PACK.with_borrow_mut(|buf| {
        let words = ((a_len + b_len) * std::mem::size_of::<T>()).div_ceil(8);
        if buf.len() < words {
            buf.resize(words, 0);
        }
        // SAFETY: the buffer holds at least `a_len + b_len` values of T (8-byte aligned,
        // initialized, and every bit pattern is a valid f32/f64); it is borrowed mutably here
        // alone.
        let packed =
            unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut T, a_len + b_len) };
        let (pa, pb) = packed.split_at_mut(a_len);
        if pack_a {
            kernel::pack(pa, a, r, m, mr);
        }
        kernel::pack(pb, b, r, n, nr);
        let (pa, tile, csa) = if pack_a {
            (pa.as_ptr(), r, mr)
        } else {
            (a.as_ptr(), 1, m)
        };
        let o = Operands {
            m,
            n,
            k: r,
            a: pa,
            tile,
            rsa: 1,
            csa,
            b: pb.as_ptr(),
            c: c.as_mut_ptr(),
            accumulate: true,
        };
        // SAFETY: `o` describes aᵀ either packed in `pa` or in place in `a` (element (i, p)
        // at a[p·m + i], within the asserted r·m values), and `b` packed in `pb` for `isa`,
        // which this CPU supports; the assertion bounds `c`, a unique borrow overlapping
        // neither.
        unsafe { run(isa, &o) };
    });
}

#[cfg(test)]
mod tests;
