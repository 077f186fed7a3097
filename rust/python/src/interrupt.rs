//! Ctrl-C for one long computation that cannot be cut into blocks without changing its result:
//! a loss and its gradient, reduced over a fixed tree of chunks, and a training minibatch or
//! validation loss. (Per-row calls and sampling are cut into blocks instead, which changes
//! nothing there, and check for Ctrl-C between them; sampling also reports progress and can
//! hand back its chains between blocks.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use pyo3::prelude::*;

/// How often the waiting thread takes the GIL back to look for Ctrl-C.
const POLL: Duration = Duration::from_millis(50);

/// Runs `f` without the GIL on a helper thread, while this thread takes the GIL back every
/// [`POLL`] to let Python run its signal handlers. On Ctrl-C it raises the flag `f` watches
/// (the engine then skips the chunks it has not started), waits for `f` to return, and
/// returns the `KeyboardInterrupt`. `f`'s result, when it finishes, is returned as it is: the
/// flag changes nothing until it is raised.
///
/// A panic in `f` resumes on this thread, so PyO3 turns it into an exception as for any call.
pub fn detach_interruptible<R, F>(py: Python<'_>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce(&AtomicBool) -> R + Send,
{
    let cancel = AtomicBool::new(false);
    py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = channel();
            let cancel = &cancel;
            let worker = s.spawn(move || {
                // The receiver outlives the worker: the scope joins it first.
                let _ = tx.send(f(cancel));
            });
            loop {
                match rx.recv_timeout(POLL) {
                    Ok(r) => return Ok(r),
                    Err(RecvTimeoutError::Disconnected) => match worker.join() {
                        Err(panic) => std::panic::resume_unwind(panic),
                        Ok(()) => unreachable!("the worker sends before it returns"),
                    },
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(err) = Python::attach(|py| py.check_signals()) {
                            cancel.store(true, Ordering::Relaxed);
                            // Chunks already running finish (milliseconds); the rest are skipped.
                            let _ = rx.recv();
                            return Err(err);
                        }
                    }
                }
            }
        })
    })
}
