//! Ctrl-C for one long computation that cannot be cut into blocks without changing its result:
//! a loss and its gradient, reduced over a fixed tree of chunks, and a training minibatch or
//! validation loss. (Per-row calls and sampling are cut into blocks instead, which changes
//! nothing there, and check for Ctrl-C between them; sampling also reports progress and can
//! hand back its chains between blocks.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
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
/// Where the system refuses the helper thread (a process limit), `f` runs on this thread,
/// without the GIL, and a Ctrl-C is seen when it returns.
pub fn detach_interruptible<R, F>(py: Python<'_>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce(&AtomicBool) -> R + Send,
{
    let cancel = AtomicBool::new(false);
    // Taken by the helper thread, or back here if it cannot start.
    let task = Mutex::new(Some(f));
    py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = channel();
            let (cancel, task) = (&cancel, &task);
            let started = std::thread::Builder::new().spawn_scoped(s, move || {
                let f = lock(task).take().expect("the task is taken once");
                // The receiver outlives the worker: the scope joins it first.
                let _ = tx.send(f(cancel));
            });
            let worker = match started {
                Ok(worker) => worker,
                Err(_) => {
                    let f = lock(task).take().expect("no thread took the task");
                    return Ok(f(cancel));
                }
            };
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

/// The lock of `m`, poisoned or not: the task it holds is taken whole or not at all.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
