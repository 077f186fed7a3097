//! The floating-point types the engine runs in: `f32` and `f64`, and nothing else.
//!
//! Every algorithm is written once, generic over [`Real`]; the trait is sealed so that the
//! numerical tolerances and the GEMM dispatch only ever meet the two types they were checked for.

use std::fmt::{Debug, Display};
use std::iter::Sum;

use num_traits::{Float, NumAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// `f32` or `f64`.
pub trait Real:
    Float
    + NumAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + sealed::Sealed
    + crate::vmath::Transcendental
{
    /// The numpy name of the type (`"float32"` or `"float64"`).
    const NAME: &'static str;

    /// Converts a constant written in `f64`; exact for `f64`, correctly rounded for `f32`.
    fn c(x: f64) -> Self;

    /// Widens to `f64` (exact).
    fn to_f64_exact(self) -> f64;
}

impl Real for f32 {
    const NAME: &'static str = "float32";
    #[inline(always)]
    fn c(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64_exact(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "float64";
    #[inline(always)]
    fn c(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64_exact(self) -> f64 {
        self
    }
}
