//! First-order optimizers on the flat parameter vector (public layout): Adam (Kingma & Ba
//! 2015) and SGD with momentum, each with optional L2 weight decay.
//!
//! The update rules are PyTorch's (`torch.optim.Adam`, `torch.optim.SGD`), so a run can be
//! compared step by step with one written there. With gradient g and weight decay λ:
//!
//! ```text
//! g ← g + λθ
//! Adam  m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  θ ← θ − lr · (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)
//! SGD   u ← μu + g (u = g at the first step),    θ ← θ − lr · u
//! ```
//!
//! Each step is one sequential pass over the parameters: the result does not depend on the
//! number of threads.

use crate::error::{try_filled, Divergence, Error, Quantity, Result};
use crate::real::Real;

/// Which update rule, with its own hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Adam { beta1: f64, beta2: f64, eps: f64 },
    Sgd { momentum: f64 },
}

impl Method {
    /// Adam with PyTorch's defaults β = (0.9, 0.999), ε = 1e-8.
    pub const ADAM: Method = Method::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    /// SGD with momentum 0.9.
    pub const SGD: Method = Method::Sgd { momentum: 0.9 };

    /// `"adam"` or `"sgd"` with the defaults above.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "adam" => Ok(Self::ADAM),
            "sgd" => Ok(Self::SGD),
            _ => Err(Error::Value(format!(
                "optimizer must be 'adam' or 'sgd', got '{name}'"
            ))),
        }
    }
}

/// An optimizer and its state for one parameter vector.
#[derive(Debug, Clone)]
pub struct Optimizer<T> {
    method: Method,
    lr: T,
    weight_decay: T,
    /// Adam's first moment, or SGD's momentum buffer.
    m: Vec<T>,
    /// Adam's second moment (empty for SGD).
    v: Vec<T>,
    /// Steps taken.
    t: u64,
}

fn check_rate(v: f64, what: &str, allow_zero: bool) -> Result<()> {
    if v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) {
        Ok(())
    } else {
        let bound = if allow_zero { ">= 0" } else { "> 0" };
        Err(Error::Value(format!(
            "{what} must be a finite number {bound}, got {v}"
        )))
    }
}

impl<T: Real> Optimizer<T> {
    /// An optimizer for `n_params` parameters; validates every hyper-parameter.
    pub fn new(method: Method, lr: f64, weight_decay: f64, n_params: usize) -> Result<Self> {
        check_rate(lr, "lr", false)?;
        check_rate(weight_decay, "weight_decay", true)?;
        match method {
            Method::Adam { beta1, beta2, eps } => {
                for (b, name) in [(beta1, "beta1"), (beta2, "beta2")] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(Error::Value(format!("{name} must be in [0, 1), got {b}")));
                    }
                }
                check_rate(eps, "eps", false)?;
            }
            Method::Sgd { momentum } => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(Error::Value(format!(
                        "momentum must be in [0, 1), got {momentum}"
                    )));
                }
            }
        }
        let v_len = if matches!(method, Method::Adam { .. }) {
            n_params
        } else {
            0
        };
        Ok(Optimizer {
            method,
            lr: T::c(lr),
            weight_decay: T::c(weight_decay),
            m: try_filled(n_params, T::zero(), "the optimizer's first moments")?,
            v: try_filled(v_len, T::zero(), "the optimizer's second moments")?,
            t: 0,
        })
    }

    /// The length of the parameter vector.
    pub fn len(&self) -> usize {
        self.m.len()
    }

    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update of `params` from `grad` (same length as at construction). A [`Divergence`]
    /// when Adam's mean squared gradient overflows (`params` are then updated but must not be
    /// used): it would make every later step 0/∞ = 0, and training would stop moving without
    /// an error.
    pub fn step(&mut self, params: &mut [T], grad: &[T]) -> std::result::Result<(), Divergence> {
        assert!(params.len() == self.m.len() && grad.len() == self.m.len());
        self.t += 1;
        let (lr, wd) = (self.lr, self.weight_decay);
        match self.method {
            Method::Adam { beta1, beta2, eps } => {
                let t = self.t as i32;
                let (b1, b2) = (T::c(beta1), T::c(beta2));
                let c1 = T::c(1.0 - beta1.powi(t));
                let sqrt_c2 = T::c((1.0 - beta2.powi(t)).sqrt());
                let eps = T::c(eps);
                let step = lr / c1;
                let mut finite = true;
                for i in 0..params.len() {
                    let g = grad[i] + wd * params[i];
                    self.m[i] = b1 * self.m[i] + (T::one() - b1) * g;
                    self.v[i] = b2 * self.v[i] + (T::one() - b2) * g * g;
                    finite &= self.v[i].is_finite();
                    params[i] -= step * self.m[i] / (self.v[i].sqrt() / sqrt_c2 + eps);
                }
                if !finite {
                    return Err(Divergence::NonFinite(Quantity::SecondMoments));
                }
            }
            Method::Sgd { momentum } => {
                let mu = T::c(momentum);
                let first = self.t == 1;
                for i in 0..params.len() {
                    let g = grad[i] + wd * params[i];
                    self.m[i] = if first { g } else { mu * self.m[i] + g };
                    params[i] -= lr * self.m[i];
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adam's first step moves every parameter by lr·sign(g) (bias correction makes
    /// m̂ = g and v̂ = g²).
    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let mut opt = Optimizer::<f64>::new(Method::ADAM, 0.1, 0.0, 3).unwrap();
        let mut p = vec![1.0, 2.0, 3.0];
        opt.step(&mut p, &[0.5, -2.0, 1e-3]).unwrap();
        let want = [0.9, 2.1, 2.9];
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    /// On f(θ) = ½θ², both optimizers converge to 0; SGD's momentum recursion matches
    /// a hand-computed second step.
    #[test]
    fn optimizers_minimize_a_quadratic() {
        for method in [Method::ADAM, Method::SGD] {
            let mut opt = Optimizer::<f64>::new(method, 0.05, 0.0, 2).unwrap();
            let mut p = vec![3.0, -2.0];
            for _ in 0..2000 {
                let g = p.clone();
                opt.step(&mut p, &g).unwrap();
            }
            assert!(p.iter().all(|v| v.abs() < 1e-3), "{method:?}: {p:?}");
        }
        let mut opt = Optimizer::<f64>::new(Method::Sgd { momentum: 0.5 }, 0.1, 0.0, 1).unwrap();
        let mut p = vec![1.0];
        opt.step(&mut p, &[1.0]).unwrap(); // u = 1, p = 0.9
        opt.step(&mut p, &[1.0]).unwrap(); // u = 1.5, p = 0.75
        assert!((p[0] - 0.75).abs() < 1e-15);
    }

    /// Weight decay λ adds λθ to the gradient: with zero gradient SGD shrinks θ by lr·λ.
    #[test]
    fn weight_decay_is_l2() {
        let mut opt = Optimizer::<f64>::new(Method::Sgd { momentum: 0.0 }, 0.1, 0.5, 1).unwrap();
        let mut p = vec![2.0];
        opt.step(&mut p, &[0.0]).unwrap();
        assert!((p[0] - 1.9).abs() < 1e-15);
    }

    /// Adam's weight decay is coupled L2 (λθ joins the gradient before the moments, as in
    /// `torch.optim.Adam(weight_decay=λ)`), not AdamW's decoupled decay, and not dropped.
    #[test]
    fn adam_weight_decay_is_coupled_l2() {
        let (lr, wd) = (0.1, 0.5);
        let mut opt = Optimizer::<f64>::new(Method::ADAM, lr, wd, 2).unwrap();
        // Zero gradient: the first step moves by lr·sign(λθ).
        let mut p = vec![2.0, -3.0];
        opt.step(&mut p, &[0.0, 0.0]).unwrap();
        assert!(
            (p[0] - 1.9).abs() < 1e-6 && (p[1] + 2.9).abs() < 1e-6,
            "{p:?}"
        );
        // A second step against the textbook recursion (bias-corrected moments of g + λθ).
        let Method::Adam { beta1, beta2, eps } = Method::ADAM else {
            unreachable!()
        };
        let grad = [0.3, -1.2];
        let mut want = vec![0.0; 2];
        for i in 0..2 {
            let (theta0, theta1) = ([2.0, -3.0][i], p[i]);
            let (g1, g2) = (wd * theta0, grad[i] + wd * theta1);
            let m = beta1 * (1.0 - beta1) * g1 + (1.0 - beta1) * g2;
            let v = beta2 * (1.0 - beta2) * g1 * g1 + (1.0 - beta2) * g2 * g2;
            let (m_hat, v_hat) = (m / (1.0 - beta1 * beta1), v / (1.0 - beta2 * beta2));
            want[i] = theta1 - lr * m_hat / (v_hat.sqrt() + eps);
        }
        opt.step(&mut p, &grad).unwrap();
        for (a, b) in p.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    /// The names the binding passes pick the documented defaults; the optimizer reports its
    /// length and counts its steps.
    #[test]
    fn names_lengths_and_step_counts() {
        assert_eq!(Method::from_name("adam").unwrap(), Method::ADAM);
        assert_eq!(Method::from_name("sgd").unwrap(), Method::SGD);
        for method in [Method::ADAM, Method::SGD] {
            let mut opt = Optimizer::<f32>::new(method, 0.1, 0.0, 3).unwrap();
            assert_eq!((opt.len(), opt.is_empty(), opt.steps()), (3, false, 0));
            let mut p = vec![1.0; 3];
            for t in 1..=2 {
                opt.step(&mut p, &[1.0; 3]).unwrap();
                assert_eq!(opt.steps(), t);
            }
            let none = Optimizer::<f64>::new(method, 0.1, 0.0, 0).unwrap();
            assert_eq!((none.len(), none.is_empty()), (0, true));
        }
    }

    #[test]
    fn bad_hyper_parameters_are_errors() {
        for (lr, wd) in [
            (0.0, 0.0),
            (-1.0, 0.0),
            (f64::NAN, 0.0),
            (1.0, -0.1),
            (1.0, f64::INFINITY),
        ] {
            assert!(
                Optimizer::<f32>::new(Method::ADAM, lr, wd, 1).is_err(),
                "{lr} {wd}"
            );
        }
        assert!(Optimizer::<f32>::new(Method::Sgd { momentum: 1.0 }, 0.1, 0.0, 1).is_err());
        assert!(Method::from_name("lbfgs").is_err());
    }

    #[test]
    fn adam_reports_a_mean_squared_gradient_that_overflows() {
        // (1e300 · 1)² overflows f64: the step would be m/∞ = 0 from then on.
        let mut opt = Optimizer::<f64>::new(Method::ADAM, 1e-3, 1e300, 2).unwrap();
        let mut p = vec![1.0, 0.0];
        assert_eq!(
            opt.step(&mut p, &[0.0, 0.0]),
            Err(Divergence::NonFinite(Quantity::SecondMoments))
        );
        let mut opt = Optimizer::<f32>::new(Method::ADAM, 1e-3, 0.0, 1).unwrap();
        assert_eq!(
            opt.step(&mut [1.0], &[1e30]),
            Err(Divergence::NonFinite(Quantity::SecondMoments))
        );
        assert_eq!(
            opt.step(&mut [1.0], &[1e10]),
            Err(Divergence::NonFinite(Quantity::SecondMoments))
        );
        let mut opt = Optimizer::<f32>::new(Method::ADAM, 1e-3, 0.0, 1).unwrap();
        assert_eq!(opt.step(&mut [1.0], &[1e18]), Ok(()));
    }
}
