//! The scalars each chain carries: its step size with the dual-averaging state that tunes
//! it (Hoffman & Gelman 2014, Algorithm 5), and its acceptance and divergence counts.

/// Dual-averaging constants of Hoffman & Gelman (2014), as in Stan and NumPyro.
const DA_GAMMA: f64 = 0.05;
const DA_T0: f64 = 10.0;
const DA_KAPPA: f64 = 0.75;

/// Per-chain scalars: step size, dual-averaging state, counts.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    pub(super) eps: f64,
    mu: f64,
    h_bar: f64,
    log_eps: f64,
    log_eps_bar: f64,
    n_adapt: u32,
    pub(super) accepted: u32,
    pub(super) diverged_at: Option<usize>,
}

impl Chain {
    pub(super) fn new(eps: f64) -> Self {
        Chain {
            eps,
            mu: (10.0 * eps).ln(),
            h_bar: 0.0,
            log_eps: eps.ln(),
            log_eps_bar: 0.0,
            n_adapt: 0,
            accepted: 0,
            diverged_at: None,
        }
    }

    /// One dual-averaging update of log ε toward `target` after acceptance probability `a`.
    pub(super) fn adapt(&mut self, target: f64, a: f64) {
        self.n_adapt += 1;
        let m = f64::from(self.n_adapt);
        let w = 1.0 / (m + DA_T0);
        self.h_bar = (1.0 - w) * self.h_bar + w * (target - a);
        // Clamped so that a run of rejections cannot push ε to 0 or ∞.
        self.log_eps = (self.mu - m.sqrt() / DA_GAMMA * self.h_bar).clamp(-40.0, 20.0);
        let eta = m.powf(-DA_KAPPA);
        self.log_eps_bar = eta * self.log_eps + (1.0 - eta) * self.log_eps_bar;
        self.eps = self.log_eps.exp();
    }

    pub(super) fn freeze(&mut self) {
        self.eps = self.log_eps_bar.exp();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Step-size adaptation is Hoffman & Gelman's dual averaging (2014, Algorithm 5), and
    /// the frozen ε is the averaged iterate ε̄, not the last one: here against the recursion
    /// written out from the paper, on a fixed sequence of acceptance probabilities.
    #[test]
    fn adaptation_freezes_the_dual_averaged_step_size() {
        let (eps0, target) = (0.1, 0.574);
        let mut chain = Chain::new(eps0);
        let (mu, mut h_bar, mut log_eps, mut log_eps_bar) = ((10.0 * eps0).ln(), 0.0, 0.0, 0.0);
        for m in 1..=200 {
            let a: f64 = if m % 2 == 0 { 0.9 } else { 0.3 };
            chain.adapt(target, a);
            let m = m as f64;
            h_bar = (1.0 - 1.0 / (m + 10.0)) * h_bar + (target - a) / (m + 10.0);
            log_eps = mu - m.sqrt() / 0.05 * h_bar;
            let eta = m.powf(-0.75);
            log_eps_bar = eta * log_eps + (1.0 - eta) * log_eps_bar;
            let rel = (chain.eps - f64::exp(log_eps)).abs() / f64::exp(log_eps);
            assert!(
                rel < 1e-12,
                "step {m}: ε {} vs {}",
                chain.eps,
                f64::exp(log_eps)
            );
        }
        chain.freeze();
        let (last, averaged) = (f64::exp(log_eps), f64::exp(log_eps_bar));
        assert!(
            (chain.eps - averaged).abs() < 1e-12 * averaged,
            "{} vs {averaged}",
            chain.eps
        );
        // The two differ here, so the check above tells them apart.
        assert!(
            (last - averaged).abs() > 1e-3 * averaged,
            "{last} vs {averaged}"
        );
    }
}
