//! What a Langevin run does: the update rule, its levels (temperature, step size, steps),
//! burn-in, thinning and step-size adaptation, and the rules every run's options obey.

use crate::error::{Error, Result};

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Unadjusted Langevin: every proposal is taken.
    Ula,
    /// Metropolis-adjusted Langevin.
    Mala,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Ula => "ula",
            Method::Mala => "mala",
        }
    }
}

/// A stretch of steps at one temperature and step size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// T: the target is exp(−E/T).
    pub temperature: f64,
    /// ε of the update x + (ε/2)·s(x) + √ε·ξ.
    pub step_size: f64,
    pub n_steps: usize,
}

/// What to run. `burn_in` steps at `levels[0]` come first (tuning ε when `adapt` is set, and
/// never recorded), then every level in order; the trajectory keeps every `thin`-th of the
/// steps after burn-in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub method: Method,
    pub levels: Vec<Level>,
    pub burn_in: usize,
    pub thin: usize,
    /// Target acceptance rate for per-chain step-size adaptation (MALA, during burn-in).
    pub adapt: Option<f64>,
    pub seed: u64,
    /// Index of the first chain: chain `i` of a run draws from stream `first_chain + i` of
    /// the seed, so chains `a..b` of one run equal a run of `b − a` chains from `a`.
    pub first_chain: u64,
}

impl Config {
    /// `n_steps` steps of `method` at one temperature and step size.
    pub fn new(
        method: Method,
        n_steps: usize,
        step_size: f64,
        temperature: f64,
        seed: u64,
    ) -> Self {
        Config {
            method,
            levels: vec![Level {
                temperature,
                step_size,
                n_steps,
            }],
            burn_in: 0,
            thin: 1,
            adapt: None,
            seed,
            first_chain: 0,
        }
    }

    /// Annealed Langevin dynamics (Song & Ermon 2019): ULA over `temperatures` in order,
    /// `steps_per_level` steps each, with ε_i = ε·T_i / T_last.
    pub fn annealed(
        temperatures: &[f64],
        step_size: f64,
        steps_per_level: usize,
        seed: u64,
    ) -> Result<Self> {
        check_positive(step_size, "step_size")?;
        let Some(&last) = temperatures.last() else {
            return Err(Error::Value(
                "temperatures must list at least one temperature, got an empty list".into(),
            ));
        };
        for &t in temperatures {
            check_positive(t, "every temperature")?;
        }
        let levels = temperatures
            .iter()
            .map(|&t| {
                let eps = step_size * (t / last);
                // A ratio T_i / T_last past the floats' range gives ε_i = Inf or 0: say which
                // input.
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(Error::Value(format!(
                        "the annealed step size step_size·T/T_last = {step_size:e}·{t:e}/{last:e} \
                         is not a finite number > 0; use temperatures within a narrower range"
                    )));
                }
                Ok(Level {
                    temperature: t,
                    step_size: eps,
                    n_steps: steps_per_level,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Config {
            method: Method::Ula,
            levels,
            burn_in: 0,
            thin: 1,
            adapt: None,
            seed,
            first_chain: 0,
        })
    }

    /// Steps after burn-in.
    pub fn sampling_steps(&self) -> usize {
        self.levels.iter().map(|l| l.n_steps).sum()
    }

    /// All steps, burn-in included.
    pub fn total_steps(&self) -> usize {
        self.burn_in + self.sampling_steps()
    }

    /// Number of recorded states: ⌊sampling steps / thin⌋.
    pub fn n_kept(&self) -> usize {
        self.sampling_steps() / self.thin.max(1)
    }

    /// Checks every field and the range of `n_chains` chains from `first_chain`: what
    /// [`crate::langevin::Sampler::new`] refuses, for callers that check before they run.
    pub fn check(&self, n_chains: usize) -> Result<()> {
        self.validate()?;
        check_chain_range(self.first_chain, n_chains)
    }

    /// Checks every field; the sampler never sees an invalid configuration.
    pub fn validate(&self) -> Result<()> {
        if self.levels.is_empty() {
            return Err(Error::Value("a sampler needs at least one level".into()));
        }
        for l in &self.levels {
            if l.n_steps == 0 {
                return Err(Error::Value(format!(
                    "the number of steps must be at least 1, got {}",
                    l.n_steps
                )));
            }
            check_positive(l.step_size, "step_size")?;
            check_positive(l.temperature, "temperature")?;
            // The drift coefficient ε/(2T): a tiny T makes it Inf, and every chain NaN.
            if !(0.5 * l.step_size / l.temperature).is_finite() {
                return Err(Error::Value(format!(
                    "step_size / temperature = {:e}/{:e} overflows: use a larger temperature",
                    l.step_size, l.temperature
                )));
            }
        }
        if self.thin == 0 {
            return Err(Error::Value("thin must be at least 1, got 0".into()));
        }
        // Counted in u128, which no sum of usize values here can overflow, to name the total.
        let total: u128 =
            self.levels.iter().map(|l| l.n_steps as u128).sum::<u128>() + self.burn_in as u128;
        if total > u32::MAX as u128 {
            let steps = self.levels[0].n_steps;
            let what = match &self.levels[..] {
                [_] => "burn_in + n_steps".to_string(),
                levels if levels.iter().all(|l| l.n_steps == steps) => {
                    format!("{} temperatures × steps_per_level {steps}", levels.len())
                }
                _ => "burn_in + the levels' steps".to_string(),
            };
            return Err(Error::Value(format!(
                "the run is too long: {what} = {total} steps, at most {} allowed",
                u32::MAX
            )));
        }
        if let Some(target) = self.adapt {
            if self.method != Method::Mala {
                return Err(Error::Value(format!(
                    "step-size adaptation tunes the acceptance rate: it needs method 'mala', got '{}'",
                    self.method.name()
                )));
            }
            if !(target > 0.0 && target < 1.0) {
                return Err(Error::Value(format!(
                    "target_accept must be in (0, 1), got {target}"
                )));
            }
            if self.burn_in == 0 {
                return Err(Error::Value(
                    "step-size adaptation runs during burn-in: pass burn_in >= 1".into(),
                ));
            }
            if self.levels.len() != 1 {
                return Err(Error::Value(
                    "step-size adaptation needs a single temperature (not annealing)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The step (after burn-in) at which each level ends: what [`Config::level_at`] searches.
    pub(super) fn level_ends(&self) -> Vec<usize> {
        let ends = self.levels.iter().scan(0usize, |end, l| {
            *end = end.saturating_add(l.n_steps);
            Some(*end)
        });
        ends.collect()
    }

    /// The level, and whether burn-in is running, at step `t` (0-based, burn-in included),
    /// with `ends` from [`Config::level_ends`]: a binary search, as an annealed run may have
    /// a level per step (a scan of the levels at every step made 10⁵ levels of one step each
    /// take 170 times as long as 10⁵ ULA steps).
    pub(super) fn level_at(&self, ends: &[usize], t: usize) -> (&Level, bool) {
        if t < self.burn_in {
            return (&self.levels[0], true);
        }
        // The first level that ends after step s (past the last, the last).
        let s = t - self.burn_in;
        let i = ends.partition_point(|&e| e <= s);
        (&self.levels[i.min(self.levels.len() - 1)], false)
    }

    /// Index in the trajectory of the state after step `t`, if it is kept.
    pub(super) fn kept_index(&self, t: usize) -> Option<usize> {
        let s = (t + 1).checked_sub(self.burn_in)?;
        (s > 0 && s % self.thin == 0).then(|| s / self.thin - 1)
    }

    /// The first and last index of the states kept by steps `t0..t1` (of [`Config::kept_index`]),
    /// or `None` if they keep none: computed, not found by listing the steps, of which one
    /// block may hold 2**32 − 1 (a run of no chains, whose steps cost nothing, is one block).
    pub(super) fn kept_range(&self, t0: usize, t1: usize) -> Option<(usize, usize)> {
        // Step t keeps state s/thin − 1 where s = t + 1 − burn_in is a positive multiple of thin.
        let s_first = (t0 + 1).saturating_sub(self.burn_in).max(1);
        let s_last = t1.saturating_sub(self.burn_in);
        let (k_first, k_last) = (s_first.div_ceil(self.thin), s_last / self.thin);
        (k_first >= 1 && k_first <= k_last).then(|| (k_first - 1, k_last - 1))
    }
}

fn check_positive(v: f64, what: &str) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::Value(format!(
            "{what} must be a finite number > 0, got {v}"
        )))
    }
}

/// Chains `first_chain .. first_chain + n_chains` draw from the streams of those indices,
/// reported as i64 (numpy's `chain_indices`): the range must not pass 2⁶³ − 1. Checked by
/// every way of making chains (the sampler, and the binding's streams for the Python path).
pub fn check_chain_range(first_chain: u64, n_chains: usize) -> Result<()> {
    if (n_chains as u64)
        .checked_add(first_chain)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err(Error::Value(format!(
            "first_chain + n_samples must be at most 2**63 - 1, got {first_chain} + {n_chains}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kept_range` gives the first and last of what `kept_index` keeps over every block of
    /// steps, at every burn-in and thinning: the two say the same thing, one by arithmetic.
    #[test]
    fn the_kept_range_of_a_block_is_what_its_steps_keep() {
        for burn_in in 0..7 {
            for thin in 1..5 {
                let mut cfg = Config::new(Method::Ula, 13, 0.1, 1.0, 0);
                (cfg.burn_in, cfg.thin) = (burn_in, thin);
                for t0 in 0..22 {
                    for t1 in t0..22 {
                        let kept: Vec<usize> = (t0..t1).filter_map(|t| cfg.kept_index(t)).collect();
                        let want = kept.first().map(|&lo| (lo, *kept.last().unwrap()));
                        assert_eq!(cfg.kept_range(t0, t1), want, "{burn_in} {thin} {t0}..{t1}");
                    }
                }
            }
        }
    }

    /// `level_at`'s search finds the level that counting the levels' steps one by one finds,
    /// levels of no steps and steps past the run included.
    #[test]
    fn the_level_at_a_step_is_found_by_counting_steps() {
        let steps = [3, 0, 1, 0, 0, 4, 2];
        let mut cfg = Config::new(Method::Ula, 1, 0.1, 1.0, 0);
        cfg.levels = (0..steps.len())
            .map(|i| Level {
                temperature: 1.0 + i as f64,
                step_size: 0.1,
                n_steps: steps[i],
            })
            .collect();
        cfg.burn_in = 2;
        let counted: Vec<usize> = (0..steps.len()).flat_map(|i| vec![i; steps[i]]).collect();
        let ends = cfg.level_ends();
        for t in 0..20 {
            let (level, burning) = cfg.level_at(&ends, t);
            let want = match t.checked_sub(2) {
                None => 0,
                Some(s) => counted.get(s).copied().unwrap_or(steps.len() - 1),
            };
            assert_eq!(
                (level.temperature, burning),
                (1.0 + want as f64, t < 2),
                "step {t}"
            );
        }
    }
}
