//! Runtime CPU dispatch for the elementwise loops.
//!
//! The wheel is built for baseline x86-64, where autovectorized loops use SSE2 only.
//! `multiversion!` compiles the same `#[inline(always)]` generic body a second and third
//! time inside functions with AVX-512 or AVX2+FMA enabled, and picks one at run time. Rust
//! never contracts `a * b + c` into a fused multiply-add on its own, so every path performs
//! the same roundings: results do not depend on the CPU.

/// Which instruction set the elementwise loops run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Avx512,
    Avx2,
    Baseline,
}

impl Level {
    /// `"avx512"`, `"avx2"` or `"baseline"`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2",
            Level::Baseline => "baseline",
        }
    }
}

/// The best level this CPU supports (std caches the CPUID query).
#[inline]
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        // `v4` is compiled with AVX2 and FMA too: a VM may mask those while showing AVX-512.
        if has!("avx512f") && has!("avx512dq") && has!("avx512vl") && has!("avx2") && has!("fma") {
            return Level::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// `multiversion!(pub fn name<T>(args) => body_fn)` defines `name`, which runs the
/// `#[inline(always)]` function `body_fn` compiled for the best instruction set available.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident <T> ($($arg:ident : $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$meta])*
        $vis fn $name<T: $crate::real::Real>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
                unsafe fn v4<T: $crate::real::Real>($($arg: $ty),*) {
                    $body::<T>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3<T: $crate::real::Real>($($arg: $ty),*) {
                    $body::<T>($($arg),*)
                }
                match $crate::simd::level() {
                    // SAFETY: the CPU has the features these functions were compiled for.
                    $crate::simd::Level::Avx512 => return unsafe { v4::<T>($($arg),*) },
                    $crate::simd::Level::Avx2 => return unsafe { v3::<T>($($arg),*) },
                    $crate::simd::Level::Baseline => {}
                }
            }
            $body::<T>($($arg),*)
        }
    };
}
pub(crate) use multiversion;
