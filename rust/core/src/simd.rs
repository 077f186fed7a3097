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

/// The best level this CPU supports, found once.
#[inline]
pub fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            best(|feature| match feature {
                "avx512f" => has!("avx512f"),
                "avx512dq" => has!("avx512dq"),
                "avx512vl" => has!("avx512vl"),
                "avx2" => has!("avx2"),
                "fma" => has!("fma"),
                _ => false,
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        Level::Baseline
    })
}

/// The level a CPU with the features `has` reports gets: a pure function, so that the tests
/// can ask it about CPUs other than the one they run on.
fn best(has: impl Fn(&str) -> bool) -> Level {
    // `v4` is compiled with AVX2 and FMA too: a VM may mask those while showing AVX-512.
    let v4 = ["avx512f", "avx512dq", "avx512vl", "avx2", "fma"];
    if v4.iter().all(|f| has(f)) {
        Level::Avx512
    } else if has("avx2") && has("fma") {
        Level::Avx2
    } else {
        Level::Baseline
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_have_their_names() {
        let names = [Level::Avx512, Level::Avx2, Level::Baseline].map(Level::name);
        assert_eq!(names, ["avx512", "avx2", "baseline"]);
    }

    /// Each feature a level is compiled with is required: without any one of them the CPU
    /// gets the level below.
    #[test]
    fn a_level_needs_every_feature_it_is_compiled_with() {
        let all = ["avx512f", "avx512dq", "avx512vl", "avx2", "fma"];
        let with = |present: &[&str]| best(|f| present.contains(&f));
        assert_eq!(with(&all), Level::Avx512);
        for missing in all {
            let rest: Vec<&str> = all.iter().copied().filter(|&f| f != missing).collect();
            let expected = if missing == "avx2" || missing == "fma" {
                Level::Baseline
            } else {
                Level::Avx2
            };
            assert_eq!(with(&rest), expected, "without {missing}");
        }
        assert_eq!(with(&["avx2", "fma"]), Level::Avx2);
        assert_eq!(with(&["avx2"]), Level::Baseline);
        assert_eq!(with(&["fma"]), Level::Baseline);
        assert_eq!(with(&[]), Level::Baseline);
    }
}
