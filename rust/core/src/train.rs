//! The training loop: minibatch epochs of an objective of [`crate::objective`] with an
//! optimizer of [`crate::optim`], validation, best-epoch tracking, patience and divergence
//! detection.
//!
//! [`Trainer`] holds the whole state, so a caller can run an epoch in bounded slices
//! ([`Trainer::run_for`]) and come back between minibatches (the Python binding checks for
//! Ctrl-C and calls the user's callback there) without changing the result.
//!
//! Determinism: every random choice is keyed by the seed, never by a thread or a clock.
//! Epoch e visits the training rows in a permutation drawn from the stream
//! `(derive(seed, SHUFFLE), e)`; the SSM projections / DSM noise of global step k come from
//! `derive(seed, STEP, k)` (then the row in the minibatch, see [`crate::objective`]); the
//! validation loss of a random objective uses one fixed seed so epochs are comparable. The
//! engine is bit-identical for any thread count and the optimizer is sequential, so the
//! parameters and the history are too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::engine;
use crate::error::{try_reserve, Divergence, Error, Quantity, Result};
use crate::matrix::Rows;
use crate::model::Model;
use crate::objective::{Keys, Objective, Projection};
use crate::optim::{Method, Optimizer};
use crate::real::Real;
use crate::rng::{derive, Stream};

/// A minibatch loss above this many times the scale of the earlier ones ([`LossScale`]) is a
/// divergence: far above the spikes of a run that converges, far below what an overflowing
/// run reaches within a few steps (10¹⁴ and more after one step of lr = 100 on the demo's
/// data).
pub const BLOWUP_FACTOR: f64 = 1e6;

/// The scale of a run's minibatch losses so far, against which each new loss is judged:
/// max(1, |first loss|, −lowest loss). Later losses count only on their downward side: the
/// implicit and sliced objectives go far below zero when they should (to about
/// −½ E‖∇ₓ log p‖², −5·10⁵ per dimension for data of scale 10⁻³), while a loss that climbs
/// is what a diverging run does, and must not raise its own bar. The first loss is always
/// accepted: it is that of the parameters the user gave.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossScale {
    scale: Option<f64>,
}

impl LossScale {
    /// Judges the next minibatch loss: NaN or Inf, or a finite loss above
    /// [`BLOWUP_FACTOR`] × the scale, is a [`Divergence`]; any other loss updates the scale.
    pub fn check(&mut self, loss: f64) -> std::result::Result<(), Divergence> {
        if !loss.is_finite() {
            return Err(Divergence::NonFinite(Quantity::Loss));
        }
        self.scale = Some(match self.scale {
            None => loss.abs().max(1.0),
            Some(scale) if loss > BLOWUP_FACTOR * scale => {
                return Err(Divergence::Blowup { loss, scale });
            }
            Some(scale) => scale.max(-loss),
        });
        Ok(())
    }
}

const SHUFFLE: u64 = 1;
const STEP: u64 = 2;
const VALIDATION: u64 = 3;

/// The random schedule of a run of `seed`: which rows each epoch visits in which order, and
/// the seed of each step's random objective. [`Trainer`] follows it; a caller that computes
/// the minibatch gradients elsewhere (on a cluster) follows it too and takes the same steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub seed: u64,
}

impl Schedule {
    /// Writes into `perm` the order in which epoch `epoch` visits `n` rows (Fisher–Yates on
    /// the stream `(derive(seed, SHUFFLE), epoch)`). [`Error::OutOfMemory`] when `n` indices
    /// cannot be allocated (a Dask fit permutes all rows of a dataset that may not fit).
    pub fn permutation(self, epoch: usize, n: usize, perm: &mut Vec<usize>) -> Result<()> {
        perm.clear();
        try_reserve(perm, n, "the permutation of the rows")?;
        perm.extend(0..n);
        let mut s = Stream::new(derive(self.seed, SHUFFLE, 0), epoch as u64);
        for i in (1..n).rev() {
            let j = ((s.uniform() * (i + 1) as f64) as usize).min(i);
            perm.swap(i, j);
        }
        Ok(())
    }

    /// Seed of the SSM projections or DSM noise of global step `step` (counted over epochs).
    pub fn step_seed(self, step: u64) -> u64 {
        derive(self.seed, STEP, step)
    }

    /// Seed of the random objective on validation data: one for every epoch, so that the
    /// epochs' validation losses are comparable.
    pub fn validation_seed(self) -> u64 {
        derive(self.seed, VALIDATION, 0)
    }
}

/// The objective to train, without its per-step randomness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    Ism,
    /// Needs a target score for every training (and validation) row.
    Esm,
    Ssm {
        n_projections: usize,
        projection: Projection,
    },
    Dsm {
        noise_std: f64,
    },
}

/// Hyper-parameters of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub loss: Loss,
    pub epochs: usize,
    pub batch_size: usize,
    pub method: Method,
    pub lr: f64,
    pub weight_decay: f64,
    /// Stop after this many epochs without improvement of the monitored loss.
    pub patience: Option<usize>,
    pub seed: u64,
}

impl Config {
    /// ISM with Adam: the defaults of `EnergyMLP.fit`.
    pub fn new(epochs: usize, batch_size: usize, lr: f64, seed: u64) -> Self {
        Config {
            loss: Loss::Ism,
            epochs,
            batch_size,
            method: Method::ADAM,
            lr,
            weight_decay: 0.0,
            patience: None,
            seed,
        }
    }
}

/// Rows to train or validate on (owned: the caller's arrays may change while we run), and
/// for ESM the target score of each row.
#[derive(Debug, Clone)]
pub struct Data<T> {
    x: Vec<T>,
    target: Option<Vec<T>>,
    n: usize,
    dim: usize,
    /// The rows' name in messages (`"X"`, `"X_val"`).
    what: &'static str,
}

impl<T: Real> Data<T> {
    /// `x` is (n × dim) row-major, named `what` in errors.
    pub fn new(x: Vec<T>, dim: usize, what: &'static str) -> Result<Self> {
        let n = x.len().checked_div(dim).unwrap_or(0);
        Rows::from_slice(&x, n, dim)?.check_finite(what)?;
        if n == 0 {
            return Err(Error::Value(format!(
                "{what} must hold at least one row, got 0"
            )));
        }
        Ok(Data {
            x,
            target: None,
            n,
            dim,
            what,
        })
    }

    /// These rows with their target scores `t`, row-major with `cols` columns, named `name`
    /// in errors: it must have the rows' shape and be finite.
    pub fn with_target(mut self, t: Vec<T>, cols: usize, name: &'static str) -> Result<Self> {
        let (n, dim, what) = (self.n, self.dim, self.what);
        if cols != dim {
            return Err(Error::Shape(format!(
                "{name} must have {dim} columns like {what}, got {cols}"
            )));
        }
        if t.len() != self.x.len() {
            return Err(Error::Shape(format!(
                "{name} must have the shape of {what}, ({n}, {dim}), got ({}, {cols})",
                t.len() / cols.max(1)
            )));
        }
        Rows::from_slice(&t, n, dim)?.check_finite(name)?;
        self.target = Some(t);
        Ok(self)
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    fn view(&self) -> Rows<'_, T> {
        Rows::from_slice(&self.x, self.n, self.dim).expect("checked at construction")
    }

    fn target_view(&self) -> Option<Rows<'_, T>> {
        self.target
            .as_ref()
            .map(|t| Rows::from_slice(t, self.n, self.dim).expect("checked at construction"))
    }
}

/// What one finished epoch reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochEnd {
    pub epoch: usize,
    /// Mean of the epoch's minibatch losses.
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    /// The epoch with the lowest monitored loss so far (validation if any, else training).
    pub best_epoch: usize,
    /// Patience ran out: no improvement for `patience` epochs.
    pub patience_exhausted: bool,
}

/// A training run in progress.
pub struct Trainer<T> {
    cfg: Config,
    model: Model<T>,
    opt: Optimizer<T>,
    train: Data<T>,
    val: Option<Data<T>>,
    /// Epoch being run (= epochs finished).
    epoch: usize,
    /// Next minibatch of the epoch.
    step: usize,
    perm: Vec<usize>,
    loss_sum: f64,
    xb: Vec<T>,
    tb: Vec<T>,
    grad: Vec<T>,
    params: Vec<T>,
    /// The last parameters whose minibatch loss and gradient were finite and in range (at
    /// first, the initial ones): what the model falls back to when training diverges.
    good: Vec<T>,
    loss_scale: LossScale,
    best: Option<(usize, f64, Vec<T>)>,
    since_best: usize,
    /// The random seed of the last completed step, whose rows `xb`/`tb` still hold: for
    /// [`Trainer::check_last_step`].
    last_seed: Option<u64>,
}

impl<T: Real> Trainer<T> {
    /// Validates everything up front, so that nothing later can fail but divergence.
    pub fn new(model: Model<T>, train: Data<T>, val: Option<Data<T>>, cfg: Config) -> Result<Self> {
        let dim = model.mlp().dim();
        for (d, what) in std::iter::once((&train, "X")).chain(val.iter().map(|v| (v, "X_val"))) {
            if d.dim != dim {
                return Err(Error::Shape(format!(
                    "{what} must have {dim} columns for this model, got {}",
                    d.dim
                )));
            }
            match (cfg.loss, &d.target) {
                (Loss::Esm, None) => {
                    return Err(Error::Value(format!(
                        "objective 'esm' needs target_score for every row of {what}"
                    )))
                }
                (Loss::Esm, Some(_)) | (_, None) => {}
                (_, Some(_)) => {
                    return Err(Error::Value(
                        "target_score is only used by objective 'esm'".into(),
                    ))
                }
            }
        }
        if cfg.epochs == 0 {
            return Err(Error::Value("epochs must be at least 1, got 0".into()));
        }
        if cfg.batch_size == 0 {
            return Err(Error::Value("batch_size must be at least 1, got 0".into()));
        }
        if cfg.patience == Some(0) {
            return Err(Error::Value(
                "patience must be at least 1 (or None), got 0".into(),
            ));
        }
        // The objective's own parameters (n_projections, noise_std).
        let probe: Objective<'_, T> = objective(cfg.loss, None, 0);
        probe.validate()?;
        let n_params = model.mlp().n_params();
        let opt = Optimizer::new(cfg.method, cfg.lr, cfg.weight_decay, n_params)?;
        let params = model.mlp().params().to_vec();
        Ok(Trainer {
            cfg,
            model,
            opt,
            train,
            val,
            epoch: 0,
            step: 0,
            perm: Vec::new(),
            loss_sum: 0.0,
            xb: Vec::new(),
            tb: Vec::new(),
            grad: vec![T::zero(); n_params],
            good: params.clone(),
            loss_scale: LossScale::default(),
            params,
            best: None,
            since_best: 0,
            last_seed: None,
        })
    }

    pub fn schedule(&self) -> Schedule {
        Schedule {
            seed: self.cfg.seed,
        }
    }

    /// The current model: the parameters after the last completed step, or after an error
    /// the last good ones (see [`Error::TrainingDiverged`]).
    pub fn model(&self) -> &Model<T> {
        &self.model
    }

    /// Back to the last good parameters, with the error saying why the current step
    /// diverged.
    fn diverged(&mut self, cause: Divergence) -> Error {
        self.diverged_at(self.epoch, self.step, cause)
    }

    /// [`Trainer::diverged`], naming the step `(epoch, step)`.
    fn diverged_at(&mut self, epoch: usize, step: usize, cause: Divergence) -> Error {
        self.params.copy_from_slice(&self.good);
        self.set_model_params();
        Error::TrainingDiverged { epoch, step, cause }
    }

    /// Epochs finished so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Minibatches per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.train.n.div_ceil(self.batch_size())
    }

    /// Minibatches of the current epoch already done.
    pub fn step_in_epoch(&self) -> usize {
        self.step
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size.min(self.train.n)
    }

    /// Runs minibatches of the current epoch until it has no more or `budget` has elapsed
    /// (at least one); returns whether the epoch's minibatches are all done. How the epoch
    /// is sliced does not change the result.
    pub fn run_for(&mut self, budget: Duration) -> Result<bool> {
        self.run_for_unless(budget, &AtomicBool::new(false))
    }

    /// [`Trainer::run_for`], which gives up with [`Error::Cancelled`] once `cancel` is raised,
    /// even inside a minibatch: the trainer stays at its last completed step.
    pub fn run_for_unless(&mut self, budget: Duration, cancel: &AtomicBool) -> Result<bool> {
        let start = Instant::now();
        loop {
            if self.step == self.steps_per_epoch() {
                return Ok(true);
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            self.run_step(cancel)?;
            if start.elapsed() >= budget {
                return Ok(self.step == self.steps_per_epoch());
            }
        }
    }

    /// One minibatch: loss and gradient, divergence checks, optimizer step.
    fn run_step(&mut self, cancel: &AtomicBool) -> Result<()> {
        // The minibatch buffers are about to hold this step's rows: until it completes, no
        // step is "the last" (a cancelled or diverged step leaves nothing to check).
        self.last_seed = None;
        let (n, dim) = (self.train.n, self.train.dim);
        if self.step == 0 {
            self.schedule().permutation(self.epoch, n, &mut self.perm)?;
            self.loss_sum = 0.0;
        }
        let bs = self.batch_size();
        let rows = &self.perm[self.step * bs..((self.step + 1) * bs).min(n)];
        self.xb.clear();
        self.tb.clear();
        for &r in rows {
            self.xb
                .extend_from_slice(&self.train.x[r * dim..(r + 1) * dim]);
            if let Some(t) = &self.train.target {
                self.tb.extend_from_slice(&t[r * dim..(r + 1) * dim]);
            }
        }
        let global = (self.epoch * self.steps_per_epoch() + self.step) as u64;
        let seed = self.schedule().step_seed(global);
        let (xb, obj) = minibatch(&self.xb, &self.tb, &self.train, self.cfg.loss, seed)?;
        // Cancelled, it leaves `grad` and everything else as they were.
        let loss = engine::loss_and_grad_unless(&self.model, xb, obj, &mut self.grad, cancel)?;
        let checked = self
            .loss_scale
            .check(loss)
            .and_then(|()| finite_gradient(&self.grad));
        if let Err(cause) = checked {
            return Err(self.diverged(cause));
        }
        self.good.copy_from_slice(&self.params);
        if let Err(cause) = self.opt.step(&mut self.params, &self.grad) {
            return Err(self.diverged(cause));
        }
        if self.params.iter().any(|p| !p.is_finite()) {
            return Err(self.diverged(Divergence::NonFinite(Quantity::UpdatedParameters)));
        }
        self.set_model_params();
        self.loss_sum += loss;
        self.last_seed = Some(seed);
        self.step += 1;
        Ok(())
    }

    /// Judges the parameters after the last step as the next step would have judged them
    /// (each step's update is checked by the loss of the step after it): by their loss on the
    /// last minibatch, with its random draws. A run that stops there (its last epoch, or an
    /// early stop without validation) would otherwise keep an update that blew up, unseen.
    /// On a divergence the model goes back to the parameters before that update, and the
    /// error names the epoch just ended and the step after its last.
    pub fn check_last_step(&mut self) -> Result<()> {
        self.check_last_step_unless(&AtomicBool::new(false))
    }

    /// [`Trainer::check_last_step`], which gives up with [`Error::Cancelled`] once `cancel` is
    /// raised, leaving the trainer as it was.
    pub fn check_last_step_unless(&mut self, cancel: &AtomicBool) -> Result<()> {
        let Some(seed) = self.last_seed else {
            return Ok(());
        };
        let (xb, obj) = minibatch(&self.xb, &self.tb, &self.train, self.cfg.loss, seed)?;
        let loss = engine::loss_unless(&self.model, xb, obj, cancel)?;
        self.loss_scale.check(loss).map_err(|cause| {
            let (epoch, step) = match self.step {
                // Between epochs: the step after the last of the epoch just ended.
                0 => (self.epoch.saturating_sub(1), self.steps_per_epoch()),
                s => (self.epoch, s),
            };
            self.diverged_at(epoch, step, cause)
        })
    }

    fn set_model_params(&mut self) {
        self.model
            .set_params(&self.params)
            .expect("finite, right length");
    }

    /// Closes the epoch once [`Trainer::run_for`] returned true: validation loss, best
    /// epoch, patience.
    pub fn end_epoch(&mut self) -> Result<EpochEnd> {
        self.end_epoch_unless(&AtomicBool::new(false))
    }

    /// [`Trainer::end_epoch`], which gives up with [`Error::Cancelled`] once `cancel` is
    /// raised during the validation loss, leaving the epoch open.
    pub fn end_epoch_unless(&mut self, cancel: &AtomicBool) -> Result<EpochEnd> {
        assert!(self.step == self.steps_per_epoch(), "epoch not finished");
        let train_loss = self.loss_sum / self.steps_per_epoch() as f64;
        let val_loss = match &self.val {
            Some(v) => {
                let obj = objective(
                    self.cfg.loss,
                    v.target_view(),
                    self.schedule().validation_seed(),
                );
                let l = engine::loss_unless(&self.model, v.view(), obj, cancel)?;
                if !l.is_finite() {
                    return Err(self.diverged(Divergence::NonFinite(Quantity::ValidationLoss)));
                }
                Some(l)
            }
            None => None,
        };
        let monitored = val_loss.unwrap_or(train_loss);
        let improved = self.best.as_ref().is_none_or(|(_, b, _)| monitored < *b);
        if improved {
            self.best = Some((self.epoch, monitored, self.params.clone()));
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        let end = EpochEnd {
            epoch: self.epoch,
            train_loss,
            val_loss,
            best_epoch: self.best.as_ref().map_or(0, |b| b.0),
            patience_exhausted: self.cfg.patience.is_some_and(|p| self.since_best >= p),
        };
        self.epoch += 1;
        self.step = 0;
        Ok(end)
    }

    /// The parameters a run that stops (completed, patience, a callback) keeps: the best
    /// epoch's with validation, else the last step's. Where those are the last step's (no
    /// validation, or the best epoch is the one just ended), [`Trainer::check_last_step`]
    /// judges them first: a finite validation loss does not show an update that blew up.
    pub fn finish(&mut self) -> Result<()> {
        self.finish_unless(&AtomicBool::new(false))
    }

    /// [`Trainer::finish`], which gives up with [`Error::Cancelled`] once `cancel` is raised.
    pub fn finish_unless(&mut self, cancel: &AtomicBool) -> Result<()> {
        let best_is_last = self.step == 0
            && self
                .best
                .as_ref()
                .is_some_and(|(epoch, _, _)| epoch + 1 == self.epoch);
        if self.val.is_none() || best_is_last {
            self.check_last_step_unless(cancel)?;
        }
        if self.val.is_some() {
            self.restore_best();
        }
        Ok(())
    }

    /// Puts back the parameters of the best epoch (if one has finished).
    pub fn restore_best(&mut self) {
        if let Some((_, _, p)) = &self.best {
            self.params.copy_from_slice(p);
            self.set_model_params();
        }
    }
}

/// NaN or Inf in a step's gradient is a [`Divergence`].
fn finite_gradient<T: Real>(grad: &[T]) -> std::result::Result<(), Divergence> {
    match grad.iter().all(|g| g.is_finite()) {
        true => Ok(()),
        false => Err(Divergence::NonFinite(Quantity::Gradient)),
    }
}

/// The rows of the minibatch that `xb` (and, for ESM, `tb`) holds, gathered from `data`, and
/// the objective on them with the step's random `seed`.
fn minibatch<'a, T: Real>(
    xb: &'a [T],
    tb: &'a [T],
    data: &Data<T>,
    loss: Loss,
    seed: u64,
) -> Result<(Rows<'a, T>, Objective<'a, T>)> {
    let (c, dim) = (xb.len() / data.dim, data.dim);
    let target = match data.target {
        Some(_) => Some(Rows::from_slice(tb, c, dim)?),
        None => None,
    };
    Ok((Rows::from_slice(xb, c, dim)?, objective(loss, target, seed)))
}

/// The engine objective of `loss` for one batch.
fn objective<T: Real>(loss: Loss, target: Option<Rows<'_, T>>, seed: u64) -> Objective<'_, T> {
    match (loss, target) {
        (Loss::Esm, Some(target)) => Objective::Esm { target },
        (
            Loss::Ssm {
                n_projections,
                projection,
            },
            _,
        ) => Objective::Ssm {
            n_projections,
            projection,
            seed,
            keys: Keys::Position,
        },
        (Loss::Dsm { noise_std }, _) => Objective::Dsm {
            noise_std,
            seed,
            keys: Keys::Position,
        },
        // Esm without a target is refused by Trainer::new; validate() accepts the probe.
        _ => Objective::Ism,
    }
}

/// The history of a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub train_loss: Vec<f64>,
    pub val_loss: Vec<f64>,
    pub best_epoch: usize,
    pub stopped_by_patience: bool,
}

/// Runs `cfg.epochs` epochs (or until patience runs out) and returns the model, with the
/// best validation epoch's parameters restored when there is validation data.
pub fn fit<T: Real>(
    model: Model<T>,
    train: Data<T>,
    val: Option<Data<T>>,
    cfg: Config,
) -> Result<(Model<T>, History)> {
    let mut tr = Trainer::new(model, train, val, cfg)?;
    let mut h = History {
        train_loss: Vec::new(),
        val_loss: Vec::new(),
        best_epoch: 0,
        stopped_by_patience: false,
    };
    for _ in 0..cfg.epochs {
        while !tr.run_for(Duration::MAX)? {}
        let e = tr.end_epoch()?;
        h.train_loss.push(e.train_loss);
        h.val_loss.extend(e.val_loss);
        h.best_epoch = e.best_epoch;
        if e.patience_exhausted {
            h.stopped_by_patience = true;
            break;
        }
    }
    tr.finish()?;
    Ok((tr.model, h))
}

#[cfg(test)]
mod tests {
    use super::{finite_gradient, LossScale, BLOWUP_FACTOR};
    use crate::error::{Divergence, Quantity};

    #[test]
    fn a_negative_first_loss_sets_the_scale_by_its_size() {
        // max(1, |first loss|): a first loss of -1e3 makes 1e8 no blow-up (1e6 × 1e3 > 1e8),
        // where a scale of 1 would (mutation audit).
        let mut s = LossScale::default();
        assert_eq!(s.check(-1e3), Ok(()));
        assert_eq!(s.check(1e8), Ok(()));
    }

    #[test]
    fn a_non_finite_gradient_is_a_divergence() {
        assert_eq!(finite_gradient(&[1.0f32, 2.0]), Ok(()));
        assert_eq!(
            finite_gradient(&[1.0, f64::NEG_INFINITY]),
            Err(Divergence::NonFinite(Quantity::Gradient))
        );
        assert_eq!(
            finite_gradient(&[f32::NAN]),
            Err(Divergence::NonFinite(Quantity::Gradient))
        );
    }

    #[test]
    fn the_loss_scale_accepts_the_first_loss_and_falls_but_never_climbs() {
        let mut s = LossScale::default();
        assert_eq!(
            s.check(f64::NAN),
            Err(Divergence::NonFinite(Quantity::Loss))
        );
        assert_eq!(s.check(1e9), Ok(())); // the first loss, however large
        assert_eq!(s.check(1e9 * BLOWUP_FACTOR), Ok(()));
        let too_much = 1e9 * BLOWUP_FACTOR * 1.0001;
        assert_eq!(
            s.check(too_much),
            Err(Divergence::Blowup {
                loss: too_much,
                scale: 1e9
            })
        );

        let mut s = LossScale::default();
        assert_eq!(s.check(-0.01), Ok(())); // scale max(1, 0.01) = 1
        assert_eq!(s.check(5e5), Ok(())); // climbing does not raise the scale...
        assert_eq!(
            s.check(2e6),
            Err(Divergence::Blowup {
                loss: 2e6,
                scale: 1.0
            })
        );
        assert_eq!(s.check(-3e3), Ok(())); // ...falling does
        assert_eq!(s.check(2e9), Ok(()));
        assert_eq!(
            s.check(f64::INFINITY),
            Err(Divergence::NonFinite(Quantity::Loss))
        );
        let msg = crate::Error::TrainingDiverged {
            epoch: 1,
            step: 2,
            cause: Divergence::Blowup {
                loss: 2e6,
                scale: 1.0,
            },
        }
        .to_string();
        assert!(
            msg.contains(
                "the loss 2.000e6 is more than 1e6 times the scale of the earlier losses (1.000e0)"
            ),
            "{msg}"
        );
    }
}
