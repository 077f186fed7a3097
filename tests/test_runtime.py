"""runtime_info: the code paths the engine took on this CPU, and what the choice of GEMM path
does to the numbers (the kernel capped by SCOREMATCH_GEMM, in child processes): nothing
between AVX2 and AVX-512, the last bits only on the portable path."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scorematch as sm

PATHS_SCRIPT = r"""
import sys
import numpy as np
import scorematch as sm

info = sm.runtime_info()
rng = np.random.default_rng(5)
outs = []
for dtype in ("float32", "float64"):
    m = sm.EnergyMLP(3, hidden=(37, 20), activation="silu", dtype=dtype, alpha=0.3, seed=4)
    X = rng.normal(size=(300, 3)).astype(dtype)
    loss, grads = m.ism_loss_and_grad(X)
    s = m.sample(70, n_steps=5, step_size=0.05, method="ula", seed=2)
    outs += [m.energy(X), m.score(X), m.hessian_trace(X), np.array(loss), *grads, s.samples]
np.savez(sys.argv[1], *outs)
print(info["gemm_kernel"])
"""


def test_runtime_info_names_the_paths():
    info = sm.runtime_info()
    assert info["version"] == sm.__version__
    assert info["gemm_kernel"] in {"avx512", "avx2", "portable"}
    assert info["elementwise"] in {"avx512", "avx2", "baseline"}
    assert info["num_threads"] == sm.get_num_threads()


def _run(tmp_path, gemm: str | None) -> tuple[str, list[np.ndarray]]:
    env = {k: v for k, v in os.environ.items() if k != "SCOREMATCH_GEMM"}
    if gemm is not None:
        env["SCOREMATCH_GEMM"] = gemm
    out = tmp_path / f"{gemm}.npz"
    run = subprocess.run(
        [sys.executable, "-c", PATHS_SCRIPT, str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    with np.load(out) as z:
        return run.stdout.strip(), [z[k] for k in z.files]


def test_the_simd_paths_give_the_same_bits_and_the_portable_one_close_values(tmp_path):
    best, want = _run(tmp_path, None)
    assert best == sm.runtime_info()["gemm_kernel"]
    took, got = _run(tmp_path, "avx2")
    assert took == ("portable" if best == "portable" else "avx2")
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.dtype == b.dtype and a.shape == b.shape, i
        assert a.tobytes() == b.tobytes(), f"output {i} differs between {took} and {best}"
    # The portable path rounds a·b and + separately on x86-64 (where the wheel cannot assume
    # an FMA unit), so it agrees to rounding only.
    took, got = _run(tmp_path, "portable")
    assert took == "portable"
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        tol = 2e-4 if i < len(want) // 2 else 1e-11  # the float32 model's outputs first
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"output {i}")


@pytest.mark.parametrize("value", ["", "avx1024", "AVX2"])
def test_an_unknown_cap_keeps_the_best_path(tmp_path, value):
    took, _ = _run(tmp_path, value)
    assert took == sm.runtime_info()["gemm_kernel"]


@pytest.mark.parametrize("value", ["Portable", "protable"])
def test_an_unknown_scorematch_gemm_is_named_in_a_warning(value):
    # The engine ignores a value it does not know and takes the best path: a typo for
    # "portable" gave other last bits than asked for, without a word.
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import scorematch as sm\n"
        "print(sm.runtime_info()['gemm_kernel'])\n"
        "print('|'.join(str(x.message) for x in w))\n"
    )
    env = dict(os.environ, SCOREMATCH_GEMM=value)
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True
    )
    kernel, messages = out.stdout.splitlines()
    assert messages == (
        f"SCOREMATCH_GEMM={value!r} is not one of 'portable', 'avx2', 'avx512' and is "
        f"ignored: the GEMM kernel is {kernel!r}"
    )
    env["SCOREMATCH_GEMM"] = "portable"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True
    )
    assert out.stdout.splitlines() == ["portable", ""]
    # Empty is unset: the best path, and no warning (there was one, naming '').
    env["SCOREMATCH_GEMM"] = ""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True
    )
    assert out.stdout.splitlines() == [kernel, ""]
