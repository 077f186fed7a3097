//! The ISA-independent part of the packed GEMM: the register-tile micro-kernel, the blocked
//! loops around it, the packing of `B` into column panels and the portable fallback.
//!
//! Every output element is ONE sequential chain over `p = 0..k`:
//! `acc = c_init; acc = fma(a[i,p], b[p,j], acc)`, with `c_init = 0` or the old `c`. The
//! micro-kernel for a full tile, the one for the remainder rows and the narrow last column
//! panel (masked moves straight into `c` on AVX-512 and on AVX2 in f64, a stack tile
//! otherwise) all run that same chain, and splitting `k` into blocks only stores and reloads
//! the accumulator (exact).
//! So a row's result depends only on that row of `a` and on `B` — never on `m` or on where
//! the row sits in the block — and, `fma` being exactly rounded, it is bit-identical across
//! the AVX2 and AVX-512 paths too.

/// A SIMD vector type of one instruction set, for one scalar type.
///
/// Implementations live in `x86.rs`; their methods are `#[inline(always)]` wrappers around
/// single intrinsics and are only ever inlined into functions compiled with the matching
/// `#[target_feature]`.
pub(super) trait Simd {
    type T: Copy;
    type V: Copy;
    /// Scalars per vector.
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(p: *const Self::T) -> Self::V;
    unsafe fn load(p: *const Self::T) -> Self::V;
    unsafe fn store(p: *mut Self::T, v: Self::V);
    /// `a · b + c`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Whether [`Simd::load_first`] and [`Simd::store_first`] exist and are used (AVX-512's
    /// masked moves, AVX2's `vmaskmovpd`). Without them the narrow last column panel goes
    /// through a stack tile.
    const MASKED: bool;
    /// The lanes `0..n` of a vector, `n ≤ LANES`.
    type M: Copy;
    unsafe fn first(n: usize) -> Self::M;
    /// The lanes of `m` from `p` (only those are read), zero elsewhere.
    unsafe fn load_first(p: *const Self::T, m: Self::M) -> Self::V;
    /// Writes the lanes of `m` to `p` (only those are written).
    unsafe fn store_first(p: *mut Self::T, m: Self::M, v: Self::V);
}

/// Rows of `a` per block: a block of `MC` rows × `KC` depth stays in L2 while every column
/// panel of `B` passes over it.
const MC: usize = 144;
/// Depth per block: a `KC × NR` micro-panel of packed `B` stays in L1 across a block of rows.
///
/// On AVX-512 that micro-panel is 32 KiB (256 × 16 f64 or 256 × 32 f32), a whole Zen 4 L1,
/// yet smaller blocks were slower in f64 (Zen 4, one thread, medians of 7–9 alternated runs;
/// the block size changes no bits, see the module doc): `gemm_shapes` 198 × 256 · 256 × 256
/// 459 → 471 µs at `KC` = 128 and 516 µs at 64, (16, 256, 256) +2.5 %, (252, 128, 128) even;
/// `profile` f64 energy, score and trace at d = 64, w = 256, depth 3: +4, +1.4 and +3.5 % at
/// 128, +5.5, +4.6 and +12 % at 64; trace at d = 16, w = 128: even at 128, +5 % at 64.
pub(super) const KC: usize = 256;

/// `c[..MR, ..NV·LANES] = [c +] a[..MR, ..k] · b[..k, ..NV·LANES]`: the register tile.
///
/// `a` is read at `a[i·rsa + p·csa]`, `b` at `b[p·ldb + j]` (one packed micro-panel,
/// `ldb = NV·LANES`, or wider when the tile computes only the first vectors of a panel),
/// `c` at `c[i·ldc + j]`. With `EDGE` (`S::MASKED` only), `c` is read and written in its
/// columns `..cols` alone, by masked moves: the narrow last panel, straight into `c`.
///
/// # Safety
/// All those addresses must be valid (with `EDGE`, those of `c` below column `cols`); the
/// caller enables the target features of `S`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<S: Simd, const MR: usize, const NV: usize, const EDGE: bool>(
    k: usize,
    a: *const S::T,
    rsa: usize,
    csa: usize,
    b: *const S::T,
    ldb: usize,
    c: *mut S::T,
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    let mut masks = [S::first(0); NV];
    if EDGE {
        for (v, m) in masks.iter_mut().enumerate() {
            *m = S::first(cols.saturating_sub(v * S::LANES).min(S::LANES));
        }
    }
    let mut acc = [[S::zero(); NV]; MR];
    if accumulate {
        for (i, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                let p = c.add(i * ldc + v * S::LANES);
                *x = if EDGE {
                    S::load_first(p, masks[v])
                } else {
                    S::load(p)
                };
            }
        }
    }
    let mut ap = a;
    let mut bp = b;
    for _ in 0..k {
        let mut bv = [S::zero(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = S::load(bp.add(v * S::LANES));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = S::splat(ap.add(i * rsa));
            for (x, &bj) in row.iter_mut().zip(&bv) {
                *x = S::fma(ai, bj, *x);
            }
        }
        ap = ap.add(csa);
        bp = bp.add(ldb);
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            let p = c.add(i * ldc + v * S::LANES);
            if EDGE {
                S::store_first(p, masks[v], x);
            } else {
                S::store(p, x);
            }
        }
    }
}

/// [`tile`] for `rows ≤ MR` rows (the remainder of a block runs the same chain with fewer rows).
///
/// # Safety
/// As [`tile`], with `1 ≤ rows ≤ MR_MAX` where `MR_MAX` is the largest arm below.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<S: Simd, const NV: usize, const EDGE: bool>(
    rows: usize,
    k: usize,
    a: *const S::T,
    rsa: usize,
    csa: usize,
    b: *const S::T,
    ldb: usize,
    c: *mut S::T,
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    macro_rules! arms {
        ($($r:literal)*) => {
            match rows {
                $($r => tile::<S, $r, NV, EDGE>(
                    k, a, rsa, csa, b, ldb, c, ldc, cols, accumulate,
                ),)*
                _ => unreachable!("tile of {rows} rows"),
            }
        };
    }
    arms!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// Operands of one product `c (m×n) = [c +] a (m×k) · B`, `B` packed by [`pack`] with panel
/// width `NV·LANES`; `c` is row-major with row stride `n`. Row `i0 + i` of a register tile
/// starting at row `i0` (a multiple of `MR`) is read at `a[i0·tile + i·rsa + p·csa]`: plain
/// row-major `a` has `tile = rsa = k, csa = 1`; `a` packed by [`pack`] as `aᵀ` has `tile = k,
/// rsa = 1, csa = MR`.
pub(super) struct Operands<T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const T,
    pub tile: usize,
    pub rsa: usize,
    pub csa: usize,
    pub b: *const T,
    pub c: *mut T,
    pub accumulate: bool,
}

/// Vectors per column panel of packed `B` for a product with `n` columns, on vectors of
/// `lanes` values: two (the register tiles of `x86.rs`: `MR` rows × 2 vectors), or one when
/// `n` fits in a single vector. A second vector would then hold only zero padding and double
/// the work: the reverse product of the first layer has `n = dim` columns, and at dim ≤ 16
/// in f32 with AVX-512 it took 5–8 % of a score pass or a Langevin step that way.
pub(super) const fn panel_vectors(n: usize, lanes: usize) -> usize {
    if n <= lanes {
        1
    } else {
        2
    }
}

/// [`drive`] with the panel width that [`panel_vectors`] gives for `o.n`: the width `B` was
/// packed with; 8-row tiles instead of `MR` when rows of `a` alias in L1 (see [`ALIAS_BYTES`]).
///
/// # Safety
/// As [`drive`].
#[inline(always)]
pub(super) unsafe fn drive_panels<S: Simd, const MR: usize>(o: &Operands<S::T>)
where
    S::T: Default,
{
    let row_bytes = o.rsa * std::mem::size_of::<S::T>();
    // Plain row-major `a` only (`tile == rsa`): packed rows are adjacent and tied to `MR`.
    if MR > ALIAS_WAYS && o.m > ALIAS_WAYS && o.tile == o.rsa && row_bytes % ALIAS_BYTES == 0 {
        return match panel_vectors(o.n, S::LANES) {
            1 => drive::<S, ALIAS_WAYS, 1>(o),
            _ => drive::<S, ALIAS_WAYS, 2>(o),
        };
    }
    match panel_vectors(o.n, S::LANES) {
        1 => drive::<S, MR, 1>(o),
        _ => drive::<S, MR, 2>(o),
    }
}

/// L1 geometry (32 KiB, 8-way on Zen 3/4; 48 KiB, 12-way on recent Intel cores, where the
/// rule is harmless but not needed): lines `ALIAS_BYTES` apart share a set of `ALIAS_WAYS`
/// ways. When rows of `a` are a multiple of `ALIAS_BYTES` apart (k = 512
/// in f64, 1024 in f32), a 12-row tile reads 12 lines of one set at every step: [`drive_panels`]
/// then runs 8-row tiles, whose lines fit the set. Same chains, same bits. Measured (one
/// thread, Zen 4, `gemm_shapes` example, medians): f64 256 × 512 · 512 × 512 2.77 → 2.60 ms,
/// 16 rows 173 → 153 µs; f32 256 × 1024 · 1024 × 1024 5.90 → 5.07 ms (the rate of k = 1040).
const ALIAS_BYTES: usize = 4096;
const ALIAS_WAYS: usize = 8;

/// The blocked loops: `k` in blocks of [`KC`], rows in blocks of [`MC`], then column panels,
/// then register tiles of `MR` rows.
///
/// # Safety
/// `o` must describe valid memory: `a` covers every `i·rsa + p·csa`, `b` holds
/// `⌈n / NR⌉ · k · NR` packed values, `c` holds `m·n`, and `c` overlaps neither. `k ≥ 1`.
/// The caller enables the target features of `S`; `MR ≤ 12`.
#[inline(always)]
pub(super) unsafe fn drive<S: Simd, const MR: usize, const NV: usize>(o: &Operands<S::T>)
where
    S::T: Default,
{
    if o.m == 1 {
        return single_row::<S, NV>(o);
    }
    let nr = NV * S::LANES;
    let panels = o.n.div_ceil(nr);
    let mc = (MC / MR) * MR;
    // The last panel's stack tile, where it is narrower than `nr` and `S` has no masked moves
    // (see `narrow_panel`).
    let mut stage = [[S::T::default(); 64]; 12];
    debug_assert!(nr <= 64 && MR <= 12);
    // Equal blocks of at most KC: 528 = 3 × 176, not 256 + 256 + 16 (a thin last block
    // would pay a full load and store of every C tile for a few steps).
    let kc = o.k.div_ceil(o.k.div_ceil(KC));
    for pc in (0..o.k).step_by(kc) {
        let kb = kc.min(o.k - pc);
        let accumulate = o.accumulate || pc > 0;
        for ic in (0..o.m).step_by(mc) {
            let mb = mc.min(o.m - ic);
            for jp in 0..panels {
                let j0 = jp * nr;
                let nb = nr.min(o.n - j0);
                let b = o.b.add(jp * o.k * nr + pc * nr);
                for ir in (0..mb).step_by(MR) {
                    let rows = MR.min(mb - ir);
                    let i0 = ic + ir;
                    let a = o.a.add(i0 * o.tile + pc * o.csa);
                    let c = o.c.add(i0 * o.n + j0);
                    if nb == nr {
                        tile_rows::<S, NV, false>(
                            rows, kb, a, o.rsa, o.csa, b, nr, c, o.n, nr, accumulate,
                        );
                    } else {
                        let s = stage.as_mut_ptr() as *mut S::T;
                        narrow_panel::<S, NV>(
                            rows, kb, a, o.rsa, o.csa, b, c, o.n, nb, accumulate, s,
                        );
                    }
                }
            }
        }
    }
}

/// Column panels a single row works on at once: 4 × NV independent accumulator chains.
const ROW_PANELS: usize = 4;

/// `m = 1` (one point: a Langevin chain, a single score): a one-row tile would run one
/// latency-bound chain of `k` FMAs per panel, one panel after the other. Here up to
/// [`ROW_PANELS`] panels advance together. Each element still runs the same chain over `p`,
/// so the result is bit-identical to the tiled paths.
///
/// # Safety
/// As [`drive`], with `o.m == 1`.
#[inline(always)]
unsafe fn single_row<S: Simd, const NV: usize>(o: &Operands<S::T>)
where
    S::T: Default,
{
    let nr = NV * S::LANES;
    let full = o.n / nr;
    let mut g0 = 0;
    while g0 < full {
        // A constant group size, so that the loop over `p` is straight-line code.
        let g = ROW_PANELS.min(full - g0);
        match g {
            4 => row_panels::<S, NV, 4>(o, g0),
            3 => row_panels::<S, NV, 3>(o, g0),
            2 => row_panels::<S, NV, 2>(o, g0),
            _ => row_panels::<S, NV, 1>(o, g0),
        }
        g0 += g;
    }
    let nb = o.n - full * nr;
    if nb > 0 {
        let mut stage = [S::T::default(); 64];
        let (b, c) = (o.b.add(full * o.k * nr), o.c.add(full * nr));
        narrow_panel::<S, NV>(
            1,
            o.k,
            o.a,
            o.rsa,
            o.csa,
            b,
            c,
            o.n,
            nb,
            o.accumulate,
            stage.as_mut_ptr(),
        );
    }
}

/// The last column panel when it holds `nb < NV·LANES` columns, for `rows` rows from `a` at
/// `c` (row stride `ldc`): read and written by masked moves where `S` has them (on its first
/// vector alone when the columns fit there: the second would hold only padding), else through
/// the tile `stage` (`rows` × `NV·LANES`): the micro-kernel never touches `c` outside its
/// columns.
///
/// # Safety
/// As [`tile_rows`], with `b` the panel's packed values and `stage` room for `rows·NV·LANES`
/// values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn narrow_panel<S: Simd, const NV: usize>(
    rows: usize,
    k: usize,
    a: *const S::T,
    rsa: usize,
    csa: usize,
    b: *const S::T,
    c: *mut S::T,
    ldc: usize,
    nb: usize,
    accumulate: bool,
    stage: *mut S::T,
) {
    let nr = NV * S::LANES;
    if S::MASKED && NV > 1 && nb <= S::LANES {
        tile_rows::<S, 1, true>(rows, k, a, rsa, csa, b, nr, c, ldc, nb, accumulate);
    } else if S::MASKED {
        tile_rows::<S, NV, true>(rows, k, a, rsa, csa, b, nr, c, ldc, nb, accumulate);
    } else {
        if accumulate {
            for i in 0..rows {
                std::ptr::copy_nonoverlapping(c.add(i * ldc), stage.add(i * nr), nb);
            }
        }
        tile_rows::<S, NV, false>(rows, k, a, rsa, csa, b, nr, stage, nr, nr, accumulate);
        for i in 0..rows {
            std::ptr::copy_nonoverlapping(stage.add(i * nr), c.add(i * ldc), nb);
        }
    }
}

/// Panels `g0..g0 + G` of the single row of [`single_row`], advanced together.
///
/// # Safety
/// As [`single_row`], with `g0 + G ≤ ⌊n / NR⌋`.
#[inline(always)]
unsafe fn row_panels<S: Simd, const NV: usize, const G: usize>(o: &Operands<S::T>, g0: usize) {
    let nr = NV * S::LANES;
    let mut acc = [[S::zero(); NV]; G];
    let c = o.c.add(g0 * nr);
    if o.accumulate {
        for (q, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = S::load(c.add(q * nr + v * S::LANES));
            }
        }
    }
    let b0 = o.b.add(g0 * o.k * nr);
    let panel = o.k * nr;
    for p in 0..o.k {
        let ap = S::splat(o.a.add(p * o.csa));
        let b = b0.add(p * nr);
        for (q, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = S::fma(ap, S::load(b.add(q * panel + v * S::LANES)), *x);
            }
        }
    }
    for (q, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            S::store(c.add(q * nr + v * S::LANES), x);
        }
    }
}

/// Copies the row-major (k × n) matrix `b` into column panels of width `nr`: panel `jp`
/// holds `b[p, jp·nr + j]` at `jp·k·nr + p·nr + j`, zero-padded past column `n`.
///
/// The same copy lays out `aᵀ` for a row-major (k × m) `a` in register-tile rows:
/// `pack(dst, a, k, m, MR)` puts row `t·MR + i` of `aᵀ` at `t·MR·k + p·MR + i`.
pub(super) fn pack<T: Copy + Default>(dst: &mut [T], b: &[T], k: usize, n: usize, nr: usize) {
    assert!(nr > 0 && b.len() == k * n && dst.len() == n.div_ceil(nr) * k * nr);
    // A constant width turns each piece into a few vector moves instead of a call to memcpy.
    match nr {
        4 => pack_w::<T, 4>(dst, b, k, n),
        6 => pack_w::<T, 6>(dst, b, k, n),
        8 => pack_w::<T, 8>(dst, b, k, n),
        12 => pack_w::<T, 12>(dst, b, k, n),
        16 => pack_w::<T, 16>(dst, b, k, n),
        32 => pack_w::<T, 32>(dst, b, k, n),
        _ => unreachable!("panel width {nr}"),
    }
}

fn pack_w<T: Copy + Default, const NR: usize>(dst: &mut [T], b: &[T], k: usize, n: usize) {
    let full = n / NR;
    for (p, src) in b.chunks_exact(n).enumerate() {
        for (jp, part) in src.chunks_exact(NR).enumerate() {
            let at = jp * k * NR + p * NR;
            let d: &mut [T; NR] = (&mut dst[at..at + NR]).try_into().unwrap();
            *d = part.try_into().unwrap();
        }
        let edge = &src[full * NR..];
        if !edge.is_empty() {
            let at = full * k * NR + p * NR;
            dst[at..at + edge.len()].copy_from_slice(edge);
            dst[at + edge.len()..at + NR].fill(T::default());
        }
    }
}

/// `a · b + c` in the portable path: fused where the target has a hardware FMA that the
/// compiler may use unconditionally, so that those targets agree with the SIMD paths.
pub(super) trait MulAdd: Copy {
    fn mul_add_portable(self, b: Self, c: Self) -> Self;
}

macro_rules! mul_add_portable {
    ($t:ty) => {
        impl MulAdd for $t {
            #[inline(always)]
            fn mul_add_portable(self, b: $t, c: $t) -> $t {
                if cfg!(any(target_arch = "aarch64", target_feature = "fma")) {
                    self.mul_add(b, c)
                } else {
                    self * b + c
                }
            }
        }
    };
}
mul_add_portable!(f32);
mul_add_portable!(f64);

/// The portable path on plain slices, with `B` row-major (k × n): the same per-element chain
/// over `p` as the SIMD paths, vectorized by the compiler across `j`.
///
/// # Safety
/// As [`drive`], with `b` row-major (k × n) instead of packed.
pub(super) unsafe fn drive_portable<T: MulAdd + Default + PartialEq>(o: &Operands<T>) {
    for i in 0..o.m {
        // SAFETY: the caller guarantees `c` holds m·n values and overlaps neither input.
        let c = std::slice::from_raw_parts_mut(o.c.add(i * o.n), o.n);
        if !o.accumulate {
            c.fill(T::default());
        }
        for p in 0..o.k {
            let aip = *o.a.add(i * o.rsa + p * o.csa);
            // SAFETY: row p of the row-major `b` lies within its k·n values.
            let b = std::slice::from_raw_parts(o.b.add(p * o.n), o.n);
            for (x, &bj) in c.iter_mut().zip(b) {
                *x = aip.mul_add_portable(bj, *x);
            }
        }
    }
}
