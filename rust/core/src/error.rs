//! The one error type of the core. The Python binding maps each variant to an exception in
//! exactly one place (`rust/python/src/errors.rs`).

use thiserror::Error;

/// Everything that can go wrong in the core, with enough context to say what was expected
/// and what was given.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// An argument has the wrong shape (array dimensions, list lengths, layer widths).
    #[error("{0}")]
    Shape(String),
    /// An argument has a value outside its domain (a negative alpha, an unknown name).
    #[error("{0}")]
    Value(String),
    /// The input holds NaN or Inf; `row` is the first offending row.
    #[error("{what} contains NaN or Inf (first at row {row})")]
    NonFinite { what: &'static str, row: usize },
    /// A buffer the request needs could not be allocated (it says which, and how large).
    #[error("{0}")]
    OutOfMemory(String),
    /// A loss was asked of an empty batch: its mean is undefined.
    #[error("{0} of an empty batch is undefined: pass at least one row")]
    EmptyBatch(&'static str),
    /// Langevin chains left the finite numbers (a numerical failure, not invalid input).
    #[error(
        "{chains} of {n_chains} chains diverged (NaN or Inf) at step {first_step}, the first \
         step where any did; use a smaller step_size, or on_divergence='mask' to keep the \
         finite chains"
    )]
    Diverged {
        chains: usize,
        n_chains: usize,
        first_step: usize,
    },
    /// MALA chains whose starting points have a NaN or Inf score or energy (an overflow at
    /// finite points), where the acceptance test is undefined.
    #[error(
        "{chains} of {n_chains} chains diverged (NaN or Inf score or energy) at step 0: the \
         model's score or energy is NaN or Inf at {chains} of the starting points (it \
         overflows there), where MALA's acceptance test is undefined; start them nearer the \
         model's mass (init), or on_divergence='mask' to drop those chains"
    )]
    DivergedAtStart { chains: usize, n_chains: usize },
    /// Training diverged (see [`Divergence`]); the model keeps its last good parameters: the
    /// last ones whose minibatch loss and gradient were finite and in range (the initial ones
    /// if there were none). Epochs and steps count from 0.
    #[error(
        "training diverged at epoch {epoch}, step {step} (counting from 0): {cause}; the model \
         keeps the last parameters whose loss and gradient were finite and in range ({advice})",
        advice = cause.advice(*epoch, *step)
    )]
    TrainingDiverged {
        epoch: usize,
        step: usize,
        cause: Divergence,
    },
    /// The system refused a resource that is not memory (threads, under a process limit).
    #[error("{0}")]
    System(String),
    /// The caller's cancellation flag was raised while the computation ran (Ctrl-C in
    /// Python); its partial result is discarded.
    #[error("the computation was cancelled")]
    Cancelled,
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Requests below this many bytes skip [`check_reservable`]: no allocator refuses them short
/// of memory already exhausted, and the check would cost a small call its malloc and free.
const CHECK_FROM_BYTES: usize = 64 << 20;

/// Fails with [`Error::OutOfMemory`] (its message from `what`) when `bytes` (`None`: more than
/// `usize` holds) cannot be reserved in one piece; the reservation is released at once. Run
/// before buffers whose sizes the caller's input decides are made, so that a request the
/// allocator refuses is an error instead of an abort halfway through. Under overcommit a
/// request it grants can still exhaust memory later.
///
/// A refused request is tried once more after the threads' idle workspaces are freed
/// ([`crate::workspace::release_idle`]), which may be what holds the memory: under a memory
/// limit, a second call of the same shape was refused for the workspaces of the first.
pub fn check_reservable(bytes: Option<usize>, what: impl FnOnce() -> String) -> Result<()> {
    let fits = |b: usize| Vec::<u8>::new().try_reserve_exact(b).is_ok();
    match bytes {
        Some(b) if b < CHECK_FROM_BYTES || fits(b) => Ok(()),
        Some(b) if with_idle_released(|| fits(b)) => Ok(()),
        _ => Err(Error::OutOfMemory(what())),
    }
}

/// Frees the idle workspaces, then asks `again`.
fn with_idle_released(again: impl FnOnce() -> bool) -> bool {
    crate::workspace::release_idle();
    again()
}

/// Room for `len` more values in `v`, or [`Error::OutOfMemory`] naming `what` when it cannot
/// be allocated: for buffers whose size a caller chooses (a model's parameters, a sampler's
/// chains, a dataset's permutation), where growing the vector would abort the process. As in
/// [`check_reservable`], a refused request is tried again after the idle workspaces are freed.
pub fn try_reserve<T>(v: &mut Vec<T>, len: usize, what: &str) -> Result<()> {
    if v.try_reserve_exact(len).is_ok() || with_idle_released(|| v.try_reserve_exact(len).is_ok()) {
        return Ok(());
    }
    Err(Error::OutOfMemory(format!(
        "cannot allocate {what}: {len} values of {} bytes",
        std::mem::size_of::<T>()
    )))
}

/// A vector of `len` copies of `value`, or [`Error::OutOfMemory`] as [`try_reserve`].
pub fn try_filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// A quantity of a training step whose NaN or Inf ends the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Loss,
    Gradient,
    UpdatedParameters,
    ValidationLoss,
    /// Adam's running mean of the squared gradient (weight decay included): when it
    /// overflows, every later step is 0/∞ = 0 and training would stop moving, silently.
    SecondMoments,
}

impl Quantity {
    pub const ALL: [Quantity; 5] = [
        Quantity::Loss,
        Quantity::Gradient,
        Quantity::UpdatedParameters,
        Quantity::ValidationLoss,
        Quantity::SecondMoments,
    ];

    /// Its name in messages, which the distributed fit also passes to the binding.
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Loss => "loss",
            Quantity::Gradient => "gradient",
            Quantity::UpdatedParameters => "updated parameter vector",
            Quantity::ValidationLoss => "validation loss",
            Quantity::SecondMoments => "squared-gradient average (Adam)",
        }
    }

    /// Parses a name; an unknown one is an error that lists the choices.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|q| q.name() == name)
            .ok_or_else(|| {
                let choices: Vec<_> = Self::ALL
                    .iter()
                    .map(|q| format!("'{}'", q.name()))
                    .collect();
                Error::Value(format!(
                    "quantity must be one of {}, got '{name}'",
                    choices.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a training run was stopped as diverged.
#[derive(Debug, Error, Clone, Copy, PartialEq)]
pub enum Divergence {
    /// The quantity holds NaN or Inf.
    #[error("the {0} is NaN or Inf")]
    NonFinite(Quantity),
    /// A finite minibatch loss above [`BLOWUP_FACTOR`] times `scale`, the scale of the
    /// losses before it ([`LossScale`]).
    ///
    /// [`BLOWUP_FACTOR`]: crate::train::BLOWUP_FACTOR
    /// [`LossScale`]: crate::train::LossScale
    #[error(
        "the loss {loss:.3e} is more than {factor:e} times the scale of the earlier losses \
         ({scale:.3e})",
        factor = crate::train::BLOWUP_FACTOR
    )]
    Blowup { loss: f64, scale: f64 },
}

impl Divergence {
    /// What a run that diverged this way at `(epoch, step)` should try. The first step's loss
    /// and gradient are the initial model's on the data, before any update: no lr changes
    /// them.
    pub fn advice(&self, epoch: usize, step: usize) -> &'static str {
        match (epoch, step, self) {
            (0, 0, Divergence::NonFinite(Quantity::Loss | Quantity::Gradient)) => {
                "no update was made yet: the starting parameters' loss or gradient overflows \
                 on these rows, whatever the lr"
            }
            _ => "try a smaller lr or weight_decay",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::with_workspace;

    /// A workspace that tells whether this thread's idle workspaces were freed.
    #[derive(Default)]
    struct Marker(u32);

    fn mark() {
        with_workspace::<Marker, _>(|m| m.0 = 7);
    }

    fn still_marked() -> bool {
        with_workspace::<Marker, _>(|m| m.0 == 7)
    }

    #[test]
    fn a_divergence_before_any_update_does_not_blame_the_learning_rate() {
        let msg = |epoch, step, q| {
            Error::TrainingDiverged {
                epoch,
                step,
                cause: Divergence::NonFinite(q),
            }
            .to_string()
        };
        for q in [Quantity::Loss, Quantity::Gradient] {
            let first = msg(0, 0, q);
            assert!(
                first.ends_with(
                    "(no update was made yet: the starting parameters' loss or gradient \
                     overflows on these rows, whatever the lr)"
                ),
                "{first}"
            );
            assert!(msg(0, 1, q).ends_with("(try a smaller lr or weight_decay)"));
            assert!(msg(1, 0, q).ends_with("(try a smaller lr or weight_decay)"));
        }
        // Updates at the first step: the learning rate and weight decay are in play.
        for q in [Quantity::UpdatedParameters, Quantity::SecondMoments] {
            assert!(msg(0, 0, q).ends_with("(try a smaller lr or weight_decay)"));
        }
    }

    #[test]
    fn a_granted_request_keeps_the_idle_workspaces() {
        mark();
        assert!(check_reservable(Some(1 << 10), String::new).is_ok());
        assert!(check_reservable(Some(CHECK_FROM_BYTES), String::new).is_ok());
        let mut v: Vec<f64> = Vec::new();
        assert!(try_reserve(&mut v, 1 << 10, "values").is_ok());
        assert!(v.capacity() >= 1 << 10);
        assert!(
            still_marked(),
            "a granted request freed the idle workspaces"
        );
        assert_eq!(try_filled(3, 1.5, "values").unwrap(), vec![1.5; 3]);
    }

    #[test]
    fn a_refused_request_frees_the_idle_workspaces_then_fails() {
        // More than `isize::MAX` bytes: refused by every allocator.
        let huge = usize::MAX / 2 + 1;
        mark();
        let err = check_reservable(Some(huge), || "the chains".into()).unwrap_err();
        assert!(
            matches!(&err, Error::OutOfMemory(m) if m == "the chains"),
            "{err}"
        );
        assert!(
            !still_marked(),
            "the idle workspaces were not freed before failing"
        );
        mark();
        let err = check_reservable(None, || "a trajectory".into()).unwrap_err();
        assert!(
            matches!(&err, Error::OutOfMemory(m) if m == "a trajectory"),
            "{err}"
        );
        mark();
        let mut v: Vec<f64> = Vec::new();
        let err = try_reserve(&mut v, huge, "the chains").unwrap_err();
        assert_eq!(
            err.to_string(),
            Error::OutOfMemory(format!(
                "cannot allocate the chains: {huge} values of 8 bytes"
            ))
            .to_string()
        );
        assert!(
            !still_marked(),
            "try_reserve failed without freeing the idle workspaces"
        );
        assert!(try_filled(huge, 0u8, "bytes").is_err());
    }

    #[test]
    fn quantities_have_their_names() {
        let names = Quantity::ALL.map(Quantity::name);
        assert_eq!(
            names,
            [
                "loss",
                "gradient",
                "updated parameter vector",
                "validation loss",
                "squared-gradient average (Adam)"
            ]
        );
        for q in Quantity::ALL {
            assert_eq!(Quantity::from_name(q.name()).unwrap(), q);
            assert_eq!(q.to_string(), q.name());
        }
        let err = Quantity::from_name("grad").unwrap_err().to_string();
        assert!(
            err.contains(
                "'loss', 'gradient', 'updated parameter vector', 'validation loss', \
                 'squared-gradient average (Adam)'"
            ) && err.contains("got 'grad'"),
            "{err}"
        );
    }
}
