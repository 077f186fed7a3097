"""Engine threads: results independent of the thread count, calls from several Python threads,
the GIL released during computation, and set_num_threads argument checking."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import reference as ref
import scorematch
from helpers import assert_close, make_model, same_arrays


def _all_outputs(model, X, target):
    loss, grads = model.ism_loss_and_grad(X)
    eloss, egrads = model.esm_loss_and_grad(X, target)
    return [
        model.energy(X),
        model.score(X),
        model.hessian_trace(X),
        np.array(model.ism_loss(X)),
        np.array(loss),
        *grads,
        np.array(eloss),
        *egrads,
    ]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_bit_identical_for_any_thread_count(restore_threads, dtype, activation):
    model, _ = make_model(5, (32, 16, 8), activation, 0.5, dtype, seed=3)
    rng = np.random.default_rng(0)
    X = rng.normal(0, 2, size=(3000, 5)).astype(dtype)
    target = rng.normal(size=(3000, 5)).astype(dtype)
    results = {}
    for n in (1, 2, 8):
        scorematch.set_num_threads(n)
        assert scorematch.get_num_threads() == n
        results[n] = _all_outputs(model, X, target)
    for n in (2, 8):
        for i, (a, b) in enumerate(zip(results[1], results[n], strict=True)):
            assert a.dtype == b.dtype and np.array_equal(a, b), (
                f"output {i} differs with {n} threads"
            )
    # odd batch sizes (partial last chunk) too
    for rows in (1, 17, 1001):
        outs = []
        for n in (1, 3):
            scorematch.set_num_threads(n)
            outs.append(_all_outputs(model, X[:rows], target[:rows]))
        for a, b in zip(*outs, strict=True):
            assert np.array_equal(a, b)


def test_set_num_threads_takes_effect(restore_threads):
    scorematch.set_num_threads(3)
    assert scorematch.get_num_threads() == 3
    scorematch.set_num_threads(1)
    assert scorematch.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 4097, 10**6])
def test_set_num_threads_out_of_range(restore_threads, bad):
    before = scorematch.get_num_threads()
    with pytest.raises(ValueError, match=r"between 1 and 4096, got " + str(bad)):
        scorematch.set_num_threads(bad)
    assert scorematch.get_num_threads() == before


def test_set_num_threads_takes_the_documented_maximum(monkeypatch):
    # 4096 is in range and reaches the engine. The engine is stubbed: starting 4096 threads
    # takes seconds and loads every core.
    calls = []
    monkeypatch.setattr(scorematch._core, "set_num_threads", calls.append)
    scorematch.set_num_threads(4096)
    assert calls == [4096]


@pytest.mark.parametrize("bad", [1.5, 2.0, "2", None, True])
def test_set_num_threads_not_an_int(restore_threads, bad):
    with pytest.raises(TypeError, match="n must be an int"):
        scorematch.set_num_threads(bad)


def test_set_num_threads_huge_int_is_value_error(restore_threads):
    with pytest.raises(ValueError, match="between 1 and 4096"):
        scorematch.set_num_threads(2**70)
    with pytest.raises(ValueError, match=r"between 1 and 4096, got -1$"):
        scorematch.set_num_threads(np.int64(-1))


def test_set_num_threads_takes_numpy_integers(restore_threads):
    scorematch.set_num_threads(np.int32(3))
    assert scorematch.get_num_threads() == 3
    with pytest.raises(TypeError, match="n must be an int, got bool"):
        scorematch.set_num_threads(np.bool_(True))


def test_two_python_threads_compute_concurrently_and_correctly(restore_threads):
    scorematch.set_num_threads(2)
    model, params = make_model(6, (48, 48), "silu", 0.2, seed=9)
    rng = np.random.default_rng(1)
    XA = rng.normal(0, 2, size=(40000, 6))
    XB = rng.normal(0, 2, size=(30000, 6))
    expected = {"A": model.score(XA), "B": model.score(XB)}
    results, errors = {}, []

    def work(name, X):
        try:
            for _ in range(3):
                results.setdefault(name, []).append(model.score(X))
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread via `errors`
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=("A", XA)),
        threading.Thread(target=work, args=("B", XB)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    assert errors == []
    for name in ("A", "B"):
        assert len(results[name]) == 3
        for r in results[name]:
            assert np.array_equal(r, expected[name])
    # and they are right, not just consistent
    assert_close(expected["A"][:200], ref.score(params, XA[:200], "silu", 0.2), 1e-9)
    assert_close(expected["B"][:200], ref.score(params, XB[:200], "silu", 0.2), 1e-9)


@pytest.mark.parametrize("method", ["hessian_trace", "ism_loss_and_grad"])
def test_gil_is_released_during_computation(restore_threads, method):
    """While a worker thread is inside a long computation, the main thread runs Python code.

    The worker reads a counter just before and just after the call; the main thread increments
    it in a loop. If the call held the GIL the main thread could not run between those two
    reads (the worker holds the GIL from the first read into the call), so the counter would
    not move. No timing is asserted."""
    scorematch.set_num_threads(1)
    model, _ = make_model(20, (64, 64, 64), "tanh", 0.0, seed=1)
    X = np.random.default_rng(2).normal(0, 2, size=(8000, 20))
    counter = [0]
    seen = {}
    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        seen["before"] = counter[0]
        seen["out"] = getattr(model, method)(X)
        seen["after"] = counter[0]
        done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.05)  # a forced GIL switch inside the tiny window is then very unlikely
    try:
        t = threading.Thread(target=work)
        t.start()
        started.wait()
        while not done.is_set():
            counter[0] += 1
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert seen["after"] - seen["before"] > 1000
    again = getattr(model, method)(X)
    if method == "hessian_trace":
        assert seen["out"].shape == (8000,) and np.all(np.isfinite(seen["out"]))
        assert np.array_equal(seen["out"], again)
    else:
        assert np.isfinite(seen["out"][0]) and seen["out"][0] == again[0]
        assert same_arrays(seen["out"][1], again[1])


# One thread per CPU as Rust's available_parallelism counts them (the engine's default):
# the CPUs this process may run on, at most its cgroup's CPU quota.
_CPUS = """
import os
def cpus():
    n = len(os.sched_getaffinity(0))
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
        if quota != "max":
            n = min(n, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return n
"""


_FORK_SCRIPT = """
import multiprocessing as mp, sys
import numpy as np, scorematch as sm

def work(_):
    m = sm.EnergyMLP(2, hidden=(32, 32), alpha=1.0, seed=4)
    X = np.random.default_rng(3).normal(size=(20_000, 2))
    return m.score(X), m.ism_loss(X), m.sample(600, n_steps=5, seed=1).samples

case = sys.argv[1]
if case == "set-threads-only":
    sm.set_num_threads(2)        # a pool started, never used before the fork
elif case == "set-threads":
    sm.set_num_threads(2)
if case != "set-threads-only":
    want = work(0)               # "global": the default pool ran in the parent
with mp.get_context("fork").Pool(2) as pool:
    got = pool.map_async(work, range(2)).get(timeout=120)
if case == "set-threads-only":
    want = work(0)
for g in got:
    for a, b in zip(g, want):
        np.testing.assert_array_equal(a, b)
print("ok")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
@pytest.mark.parametrize("case", ["global", "set-threads", "set-threads-only"])
def test_forked_children_compute_with_the_parents_numbers(case, tmp_path):
    """multiprocessing's fork start method (and Dask's process scheduler, forking servers):
    the parent's worker threads do not exist in the child, whose first parallel call used to
    wait for them forever. Each child must compute the parent's numbers, whether the parent
    ran Rayon's global pool, a set_num_threads pool, or only started one. A fresh
    interpreter per case, so that no earlier test has set the pool."""
    import subprocess

    script = tmp_path / "fork_case.py"
    script.write_text(_FORK_SCRIPT)
    r = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(script), case],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_set_num_threads_in_a_forked_child_is_the_pool_it_then_uses():
    # The child's set_num_threads left the fork's mark: its next call started yet another
    # pool and kept the first one's threads idle for good (4 threads became 7; review).
    code = """
import os
import numpy as np, scorematch as sm
m = sm.EnergyMLP(2, hidden=(8,), seed=0)
X = np.random.default_rng(0).normal(size=(50_000, 2))
m.score(X)
def threads():
    return len(os.listdir("/proc/self/task"))
pid = os.fork()
if pid == 0:
    sm.set_num_threads(3)
    m.score(X)
    print(threads(), flush=True)  # this one and the pool's 3: no other exists in a child
    os._exit(0)
os.waitpid(pid, 0)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4"]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux: the CPUs Rayon counts")
def test_rayon_num_threads_above_the_limit_is_refused_with_a_warning():
    # Rayon would start them all on the first call: 4097 took ~13 s on two cores before any
    # work, 99999 minutes. set_num_threads refuses such counts; the variable is held to the
    # same range, and one thread per core is used instead.
    code = _CPUS + (
        "import warnings\n"
        "import numpy\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import scorematch as sm\n"
        "print(sm.get_num_threads(), cpus())\n"
        "print('|'.join(str(x.message) for x in w))\n"
        # Import starts no thread: where the system refused them, import itself raised.
        "print(len(os.listdir('/proc/self/task')) - before)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["RAYON_NUM_THREADS"] = "4097"
    # As if it were unset: OMP_NUM_THREADS where it is valid (it was skipped for one per
    # core, though Dask's and joblib's workers set it to share the cores).
    for omp in (None, "1"):
        if omp is not None:
            env["OMP_NUM_THREADS"] = omp
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        counts, messages, started = out.stdout.splitlines()
        got, cores = map(int, counts.split())
        assert got == (cores if omp is None else 1)
        assert started == "0"
        source = f"one per CPU ({cores})" if omp is None else "OMP_NUM_THREADS (1)"
        assert messages == (
            "RAYON_NUM_THREADS=4097 is more than the 4096 threads scorematch allows; using "
            f"{source} instead"
        )


@pytest.mark.parametrize(
    "env, want",
    [
        ({"OMP_NUM_THREADS": "1"}, "1"),
        ({"OMP_NUM_THREADS": "3,1"}, "3"),  # OpenMP's nesting levels: the first
        ({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "3"}, "3"),
        # Rayon ignores a count it cannot read (it takes one per core): OMP's then.
        ({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "0"}, "1"),
        ({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "abc"}, "1"),
        # Rayon reads by usize::from_str: " 3" is not a count to it (the engine once trimmed
        # it and skipped OMP_NUM_THREADS, for Rayon's one per core); "+3" is.
        ({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": " 3"}, "1"),
        ({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "+3"}, "3"),
        ({"OMP_NUM_THREADS": "abc"}, "cores"),
        ({"OMP_NUM_THREADS": "0"}, "cores"),
        ({}, "cores"),
    ],
)
def test_the_default_thread_count_follows_omp_num_threads(env, want):
    # joblib's loky (GridSearchCV(n_jobs=k)) and Dask's nanny give each worker process its
    # share of the cores in OMP_NUM_THREADS; each worker started one thread per core, k times
    # too many. An explicit set_num_threads still wins.
    code = _CPUS + (
        "import scorematch as sm\n"
        "print(sm.get_num_threads(), cpus())\n"
        "sm.set_num_threads(2); print(sm.get_num_threads())\n"
    )
    base = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RAYON_NUM_THREADS")
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    got, cores = first.split()
    assert got == (cores if want == "cores" else want)
    assert second == "2"


def test_omp_num_threads_is_read_as_the_engine_reads_it():
    # The fall-through past a RAYON_NUM_THREADS above 4096 reads OMP_NUM_THREADS by the
    # engine's rule (rust/core/src/parallel.rs, omp_threads: ASCII digits, its first entry,
    # 1 to 4096); int() also took "1_6" and other scripts' digits.
    from scorematch._threads import _omp_threads

    for value, want in [
        ("4", 4),
        (" +4 ", 4),
        ("3,2", 3),
        ("1_6", None),
        ("\u0664", None),
        ("0", None),
        ("4097", None),
        ("", None),
        (None, None),
    ]:
        assert _omp_threads(value) == want, value


_ADDRESS_SPACE = """
import resource, threading
import numpy as np, scorematch as sm

def limit_to(extra):
    # The address space in use now, plus `extra` bytes: thread stacks (2 MiB each) past it
    # cannot be mapped, so the system refuses the threads.
    with open("/proc/self/status") as f:
        used = next(int(line.split()[1]) << 10 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (used + extra, resource.RLIM_INFINITY))

def thread_starts():
    try:
        threading.Thread(target=lambda: None).start()
    except RuntimeError:
        return False
    return True
"""


def _child(code: str, env: dict[str, str] | None = None) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _ADDRESS_SPACE + code],
        check=False,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_worker_threads_the_system_refuses_are_an_error_tried_again_next_call():
    # Rayon's global pool panicked (pyo3's PanicException, a BaseException that `except
    # Exception` misses) when its threads could not start, and on every later call, even
    # once they could: the pool's start was never tried again (production audit). The limit
    # leaves room for no thread stack, so no thread starts at all (a thread that starts
    # and then finds no memory for its thread-local data makes glibc abort the process).
    code = """
m = sm.EnergyMLP(2, hidden=(32,), seed=0)
X = np.random.default_rng(0).normal(size=(5000, 2))
limit_to(1 << 20)
print(thread_starts())
for call in (lambda: m.score(X), lambda: m.ism_loss(X), lambda: m.sample(1000, n_steps=2),
             lambda: m.fit(X, epochs=1, progress=False)):
    try:
        call()
        print("computed")
    except RuntimeError as err:
        print(err)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(m.score(X).shape, m.fit(X, epochs=1, progress=False).stop_reason, sm.get_num_threads())
"""
    lines = _child(code, {"RAYON_NUM_THREADS": "3"})
    refusal = (
        "cannot start 3 worker threads (Resource temporarily unavailable (os error 11)): "
        "the system refused a thread; ask for fewer with set_num_threads or RAYON_NUM_THREADS"
    )
    assert lines == ["False"] + [refusal] * 4 + ["(5000, 2) completed 3"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_long_loss_runs_on_where_its_watching_thread_cannot_start():
    # A long loss runs on a helper thread while the calling one watches for Ctrl-C; where the
    # system refuses that thread (a pids limit), it raised PanicException "failed to spawn
    # thread". It now runs on the calling thread: the same bits, Ctrl-C seen at its end.
    # No long call before the limit: glibc would keep its thread's stack for the next one.
    code = """
sm.set_num_threads(1)
m = sm.EnergyMLP(16, hidden=(256, 256), seed=0)
X = np.random.default_rng(0).normal(size=(600, 16))
limit_to(1 << 20)
print(thread_starts(), m.ism_loss(X).hex())
"""
    m = scorematch.EnergyMLP(16, hidden=(256, 256), seed=0)
    want = m.ism_loss(np.random.default_rng(0).normal(size=(600, 16)))
    assert _child(code) == [f"False {want.hex()}"]


def test_tiny_calls_keep_the_gil_and_larger_ones_release_it():
    # The GIL policy (rust/python/src/model.rs, HOLD_GIL_WORK): a per-row call on a few rows
    # of a small model keeps the GIL (releasing it beside a busy thread cost 5 ms a call),
    # every larger one releases it. Beside a thread that counts while it holds the GIL, with
    # a switch interval of 0.5 s: the count cannot move during tiny calls, which never let go
    # of the GIL, and must move during a large one. (No time is asserted: the count alone.)
    model = scorematch.EnergyMLP(2, seed=0)  # hidden (64, 64, 64)
    one, many = np.ones((1, 2)), np.ones((200_000, 2))
    count, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    spinner = threading.Thread(target=spin)
    try:
        # Returns once the spinner runs, then this thread takes the GIL back for 0.5 s.
        spinner.start()
        before = count[0]
        for _ in range(200):
            model.score(one)
            model.energy(one)
            model.hessian_trace(one)
        during_tiny = count[0] - before
        before = count[0]
        model.score(many)
        during_large = count[0] - before
    finally:
        stop.set()
        spinner.join()
        sys.setswitchinterval(interval)
    assert during_tiny == 0
    assert during_large > 0
