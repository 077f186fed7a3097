"""The built-in demo and its command line."""

import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scorematch
from helpers import same_arrays
from scorematch import EnergyMLP
from scorematch import load as sm_load
from scorematch.demo import mmd2, run


def test_demo_learns_and_samples(tmp_path):
    out = tmp_path / "demo.png"
    # The demo's own training run (6-7 s on 2 cores), fewer chains.
    r = run("8gaussians", out=str(out), n_samples=500, n_steps=300, verbose=False)
    # Measured over seeds 0-7 (seed 0 in brackets): held-out ISM -23.2 to -24.8 [-24.8] from
    # about 0; Fisher divergence 0.71-1.7 [1.24], against E|s|^2 = 49; MMD² -1.4e-3 to 5.6e-3
    # [1.2e-3], two exact sample sets ~ 5e-4.
    assert r.heldout_ism < r.untrained_ism - 15.0
    assert r.fisher_divergence is not None and r.fisher_divergence < 5.0
    assert r.mmd < 0.01
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r.figure is None
    else:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_demo_writes_the_figure(tmp_path):
    """The README's main command, end to end in a subprocess (about 10 s)."""
    out = tmp_path / "fig.png"
    r = _cli("demo", "--out", str(out), "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Fisher divergence" in r.stdout and "MMD" in r.stdout, r.stdout
    # The demo's documented sizes: the model, the training set, the epochs, the chains.
    head = (
        "scorematch demo: 8gaussians, 20000 points; EnergyMLP(dim=2, hidden=(64, 64, 64), "
        "activation='softplus', dtype='float64', alpha=0.001)"
    )
    assert r.stdout.startswith(head), r.stdout
    assert "  fit: 80 epochs of implicit score matching" in r.stdout
    assert "  sample: 2000 MALA chains x 500 steps" in r.stdout
    if _has_matplotlib():
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert out.stat().st_size > 20_000  # a real figure, not an empty canvas
    else:
        assert not out.exists() and "matplotlib" in r.stdout + r.stderr


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_cli_help_and_bad_options():
    ok = subprocess.run(
        [sys.executable, "-m", "scorematch", "demo", "--help"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "--dataset" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "scorematch", "demo", "--dataset", "nope"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
    assert "Traceback" not in bad.stderr
    version = subprocess.run(
        [sys.executable, "-m", "scorematch", "--version"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert (version.returncode, version.stdout) == (0, f"scorematch {scorematch.__version__}\n")


def test_cli_names_a_malformed_hidden_option(tmp_path):
    import numpy as np

    np.save(tmp_path / "d.npy", np.zeros((10, 2)))
    r = _cli("fit", "d.npy", "--out", "m.npz", "--hidden", "8,a", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    want = "--hidden must be comma-separated integer widths, e.g. 64,64,64; got '8,a'"
    assert r.stderr.strip().splitlines() == [f"scorematch: error: {want}"]


def test_cli_takes_integer_data_and_names_empty_data_and_bad_seeds(tmp_path):
    import numpy as np

    np.save(tmp_path / "i.npy", np.arange(40).reshape(20, 2))
    r = _cli("fit", "i.npy", "--out", "m.npz", "--epochs", "1", "--hidden", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    np.save(tmp_path / "e.npy", np.zeros((0, 2)))
    r = _cli("fit", "e.npy", "--out", "m.npz", cwd=tmp_path)
    assert r.returncode == 2 and "cannot fit 'e.npy': it holds no rows of data" in r.stderr
    r = _cli("demo", "--seed", "-1", cwd=tmp_path)
    assert r.returncode == 2 and "seed must be in [0, 2**64), got -1" in r.stderr


@pytest.mark.parametrize("name", ["moons", "checkerboard"])
def test_demo_runs_on_sampler_only_datasets(tmp_path, name):
    r = run(name, out=None, n_train=2000, epochs=2, n_samples=100, n_steps=20, verbose=False)
    assert r.fisher_divergence is None and r.figure is None


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "scorematch", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_cli_fit_sample_info_round_trip(tmp_path):
    import numpy as np
    from scorematch import datasets, load

    np.save(tmp_path / "data.npy", datasets.get("moons").sample(1000, seed=0))
    fit = _cli(
        "fit", "data.npy", "--out", "m.npz", "--epochs", "3", "--hidden", "16,16", cwd=tmp_path
    )
    assert fit.returncode == 0, fit.stderr
    assert load(tmp_path / "m.npz").hidden == (16, 16)
    smp = _cli("sample", "m.npz", "-n", "50", "--steps", "20", "--out", "s.csv", cwd=tmp_path)
    assert smp.returncode == 0, smp.stderr
    samples = np.loadtxt(tmp_path / "s.csv", delimiter=",")
    assert samples.shape == (50, 2) and np.isfinite(samples).all()
    info = _cli("info", "m.npz", cwd=tmp_path)
    assert info.returncode == 0 and "hidden=(16, 16)" in info.stdout
    # Without burn-in, MALA runs with the given step size (no adaptation to ask for).
    smp = _cli(
        "sample",
        "m.npz",
        "-n",
        "5",
        "--steps",
        "5",
        "--burn-in",
        "0",
        "--out",
        "t.npy",
        cwd=tmp_path,
    )
    assert smp.returncode == 0, smp.stderr
    assert np.load(tmp_path / "t.npy").shape == (5, 2)


def test_demo_figure_path_is_checked_first_and_named_as_written(tmp_path):
    from scorematch.demo import _figure_path

    assert _figure_path(str(tmp_path / "fig")) == str(tmp_path / "fig.png")
    assert _figure_path(str(tmp_path / "fig.svg")) == str(tmp_path / "fig.svg")
    with pytest.raises(ValueError, match="no folder"):
        run(out=str(tmp_path / "missing" / "x.png"), verbose=False)
    # A folder that refuses new files (even to root), before the fit: it was found only when
    # the figure was saved, after the fitting and sampling.
    with pytest.raises(ValueError, match=r"^cannot create '/proc/x.png': its folder '/proc' "):
        run(out="/proc/x.png", verbose=False)
    # A format matplotlib cannot write, before the fit (which would take seconds).
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"cannot write the figure .*fig.txt.*: matplotlib writes"):
        _figure_path(str(tmp_path / "fig.txt"))


@pytest.mark.parametrize(
    "args",
    [
        ("info", "missing.npz"),
        ("fit", "missing.npy", "--out", "m.npz"),
        ("fit", "data.txt", "--out", "m.npz"),
        ("sample", "data.txt", "-n", "3", "--out", "s.npy"),
    ],
)
def test_cli_bad_files_give_one_line_errors(tmp_path, args):
    (tmp_path / "data.txt").write_text("not a model\n")
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("scorematch: error:") and r.stderr.count("\n") == 1


def test_cli_names_the_data_file_it_cannot_read(tmp_path):
    np.save(tmp_path / "good.npy", np.zeros((10, 2)))
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:90])
    r = _cli("fit", "trunc.npy", "--out", "m.npz", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("scorematch: error: cannot read 'trunc.npy': ")
    assert r.stderr.count("\n") == 1
    (tmp_path / "empty.csv").write_text("")
    r = _cli("fit", "empty.csv", "--out", "m.npz", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr  # no numpy warning


def test_cli_names_a_sample_larger_than_memory(tmp_path):
    """Too many chains for memory is a bad option value: one line, exit status 2."""
    from scorematch import EnergyMLP

    EnergyMLP(2, hidden=(4,)).save(tmp_path / "m.npz")
    r = _cli("sample", "m.npz", "-n", "100000000000000", "--out", "s.npy", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    want = "cannot allocate 100000000000000 chains of dimension 2"
    assert r.stderr.startswith(f"scorematch: error: {want}") and r.stderr.count("\n") == 1
    assert not (tmp_path / "s.npy").exists()


def test_demo_measures_on_held_out_points(monkeypatch):
    """The held-out ISM loss and the Fisher divergence use the held-out draw (seed + 1),
    never the training set; the MMD baseline compares two different exact draws."""
    import numpy as np
    from scorematch import EnergyMLP, datasets

    seen = []
    for name in ("ism_loss", "score"):
        real = getattr(EnergyMLP, name)

        def spy(self, X, *args, _real=real, **kwargs):
            seen.append(np.array(X, copy=True))
            return _real(self, X, *args, **kwargs)

        monkeypatch.setattr(EnergyMLP, name, spy)
    r = run(
        "8gaussians",
        out=None,
        seed=5,
        n_train=600,
        epochs=1,
        n_samples=500,
        n_steps=20,
        verbose=False,
    )
    ds = datasets.get("8gaussians")
    held_out = ds.sample(2000, seed=6)
    assert len(seen) == 3 and all(np.array_equal(x, held_out) for x in seen)
    # With 500 chains the kernel bandwidth comes from the exact draw alone (seed + 3), so
    # the baseline can be recomputed: MMD² between the draws of seeds 9 and 8.
    exact = ds.sample(500, seed=8)
    bw = float(np.median(np.linalg.norm(exact[:, None] - exact[None, :], axis=-1)))
    null = mmd2(ds.sample(500, seed=9), exact, bw)
    assert r.mmd_null == pytest.approx(null, rel=1e-12)


@pytest.mark.parametrize(
    ("seed", "derived"),
    [(5, (6, 7, 8, 9)), (2**64 - 3, (2**64 - 2, 2**64 - 1, 0, 1)), (2**64 - 1, (0, 1, 2, 3))],
)
def test_demo_derives_its_other_seeds_within_the_seed_range(monkeypatch, seed, derived):
    """Every seed in [0, 2**64) runs: the held-out set, the chains' starting points, the exact
    draw and the baseline's draw use seed + 1, + 2, + 3, + 4, wrapped modulo 2**64 (so any
    seed below 2**64 - 4 keeps its numbers)."""
    from scorematch import EnergyMLP, datasets

    test_seed, init_seed, exact_seed, null_seed = derived
    held, inits = [], []
    real_loss, real_sample = EnergyMLP.ism_loss, EnergyMLP.sample

    def ism_loss(self, X, *args, **kwargs):
        held.append(np.array(X, copy=True))
        return real_loss(self, X, *args, **kwargs)

    def sample(self, n, **kwargs):
        inits.append(np.array(kwargs["init"], copy=True))
        return real_sample(self, n, **kwargs)

    monkeypatch.setattr(EnergyMLP, "ism_loss", ism_loss)
    monkeypatch.setattr(EnergyMLP, "sample", sample)
    small = {"n_train": 600, "epochs": 1, "n_samples": 500, "n_steps": 20, "verbose": False}
    r = run("8gaussians", out=None, seed=seed, **small)
    ds = datasets.get("8gaussians")
    assert len(held) == 2 and all(np.array_equal(x, ds.sample(2000, seed=test_seed)) for x in held)
    want_init = 2.0 * np.random.default_rng(init_seed).standard_normal((500, 2))
    assert len(inits) == 1 and np.array_equal(inits[0], want_init)
    # With 500 chains the kernel bandwidth comes from the exact draw alone.
    exact = ds.sample(500, seed=exact_seed)
    bw = float(np.median(np.linalg.norm(exact[:, None] - exact[None, :], axis=-1)))
    assert r.mmd_null == pytest.approx(mmd2(ds.sample(500, seed=null_seed), exact, bw), rel=1e-12)


def test_cli_fit_and_sample_use_every_option(tmp_path, capsys):
    """Each command-line option reaches the API: the saved model equals EnergyMLP.fit with
    the same options, bit for bit, and the samples equal model.sample's."""
    import numpy as np
    from scorematch import EnergyMLP, datasets, load
    from scorematch.__main__ import main

    X = datasets.get("8gaussians").sample(400, seed=0)
    np.save(tmp_path / "d.npy", X)
    m_path = str(tmp_path / "m.npz")
    argv = [
        "fit",
        str(tmp_path / "d.npy"),
        "--out",
        m_path,
        "--hidden",
        "8,8",
        "--objective",
        "dsm",
        "--activation",
        "tanh",
        "--dtype",
        "float32",
        "--alpha",
        "0.5",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--lr",
        "2e-3",
        "--noise-std",
        "0.1",
        "--seed",
        "3",
    ]
    assert main(argv) == 0
    m = load(m_path)
    want = EnergyMLP(2, hidden=(8, 8), activation="tanh", dtype="float32", alpha=0.5, seed=3)
    want.fit(
        X, objective="dsm", epochs=3, batch_size=64, lr=2e-3, noise_std=0.1, seed=3, progress=False
    )
    assert (m.activation, m.dtype, m.alpha) == ("tanh", np.float32, 0.5)
    assert same_arrays(m.params, want.params)
    capsys.readouterr()
    for method, seed in (("mala", 3), ("ula", 4)):
        out = tmp_path / f"s-{method}.npy"
        assert (
            main(
                [
                    "sample",
                    m_path,
                    "-n",
                    "30",
                    "--steps",
                    "15",
                    "--burn-in",
                    "5",
                    "--method",
                    method,
                    "--step-size",
                    "0.02",
                    "--seed",
                    str(seed),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        res = m.sample(
            30,
            n_steps=15,
            step_size=0.02,
            method=method,
            burn_in=5,
            seed=seed,
            adapt_step_size=method == "mala",
        )
        assert np.array_equal(np.load(out), res.samples)
        assert f"({method}, 15 steps)" in capsys.readouterr().out


def test_demo_run_defaults_to_8gaussians_seed_0_and_80_epochs():
    small = {"out": None, "n_train": 600, "n_samples": 50, "n_steps": 10, "verbose": False}
    a = run(**small)
    b = run("8gaussians", seed=0, epochs=80, **small)
    measured = ("heldout_ism", "fisher_divergence", "mmd", "mmd_null")
    assert [getattr(a, f) for f in measured] == [getattr(b, f) for f in measured]


def test_cli_demo_takes_its_epochs(tmp_path):
    r = _cli("demo", "--out", "", "--epochs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "fit: 1 epochs" in r.stdout


def test_cli_fit_defaults_are_the_documented_ones(tmp_path, capsys):
    """fit with only its required arguments: the model and history of EnergyMLP.fit with the
    defaults --help shows (64,64,64 softplus float64, ism, 100 epochs, batches of 256, lr 1e-3,
    seed 0), and a summary line naming the kept best epoch and its validation loss."""
    from scorematch import EnergyMLP, datasets, load
    from scorematch.__main__ import main

    # 300 rows: 270 after the validation split, so batches of 256 and 257 differ.
    X = datasets.get("8gaussians").sample(300, seed=0)
    np.save(tmp_path / "d.npy", X)
    m_path = str(tmp_path / "m.npz")
    assert main(["fit", str(tmp_path / "d.npy"), "--out", m_path]) == 0
    want = EnergyMLP(
        2, hidden=(64, 64, 64), activation="softplus", dtype="float64", alpha=0.0, seed=0
    )
    hist = want.fit(X, objective="ism", epochs=100, batch_size=256, lr=1e-3, seed=0, progress=False)
    m = load(m_path)
    assert (m.hidden, m.activation, m.dtype, m.alpha) == ((64, 64, 64), "softplus", np.float64, 0.0)
    assert same_arrays(m.params, want.params)
    out = capsys.readouterr().out
    pattern = (
        rf"fitted {re.escape(repr(m))} on 300 rows: 100 epochs in \d+\.\d\d s, "
        rf"kept best epoch {hist.best_epoch + 1} of 100, validation loss "
        rf"{re.escape(f'{hist.val_loss[hist.best_epoch]:.5g}')} \({hist.stop_reason}\); "
        rf"saved to {re.escape(m_path)}"
    )
    assert re.fullmatch(pattern, out.strip()), out


def test_cli_fit_divergence_counts_epochs_from_1_and_says_nothing_was_written(tmp_path, capsys):
    """The divergence message counted epoch and step from 0 where the fit's summary counts
    epochs from 1 ("kept best epoch 11"), and said "the model keeps the last parameters whose
    loss and gradient were finite", of a model the command line never writes. The same fit
    through the API names epoch 1, step 4 from 0: the command line says step 5 of epoch 2."""
    from scorematch import EnergyMLP, TrainingDivergedError
    from scorematch.__main__ import main

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2)) + rng.choice([-5.0, 0.0, 5.0], size=(600, 1))
    np.save(tmp_path / "d.npy", X)
    out = str(tmp_path / "m.npz")
    options = {"epochs": 20, "batch_size": 64, "lr": 1.0, "optimizer": "sgd"}
    with pytest.raises(TrainingDivergedError) as err:
        EnergyMLP(2, hidden=(16,), seed=0).fit(X, seed=0, progress=False, **options)
    assert str(err.value).startswith("training diverged at epoch 1, step 4 (counting from 0): ")
    cause = str(err.value).split(": ", 1)[1].split("; the model keeps", 1)[0]
    argv = ["fit", str(tmp_path / "d.npy"), "--out", out, "--hidden", "16", "--epochs", "20"]
    argv += ["--batch-size", "64", "--lr", "1", "--optimizer", "sgd"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "scorematch: error: training diverged at step 5 of epoch 2 (both counted from 1): "
        f"{cause}; nothing was written to {out!r} (try a smaller --lr or --weight-decay)\n"
    )
    assert not (tmp_path / "m.npz").exists()


def test_cli_fit_divergence_without_its_parts_is_kept_whole(tmp_path, capsys, monkeypatch):
    """A TrainingDivergedError that does not carry its epoch and step (not raised by the core)
    is reported as worded, with the file's fate added."""
    from scorematch import EnergyMLP, TrainingDivergedError
    from scorematch.__main__ import main

    def fit(*args: object, **kwargs: object) -> None:
        raise TrainingDivergedError("my own divergence")

    monkeypatch.setattr(EnergyMLP, "fit", fit)
    np.save(tmp_path / "d.npy", _clusters())
    out = str(tmp_path / "m.npz")
    assert main(["fit", str(tmp_path / "d.npy"), "--out", out, "--epochs", "1"]) == 2
    assert capsys.readouterr().err == (
        f"scorematch: error: my own divergence; nothing was written to {out!r}\n"
    )
    assert not (tmp_path / "m.npz").exists()


def _clusters():
    # Three clusters of 200 rows within about 8 of 0, as the audit's make_blobs data.
    rng = np.random.default_rng(0)
    return rng.normal(size=(600, 2)) + rng.choice([-5.0, 0.0, 5.0], size=(600, 1))


def test_cli_sample_warns_of_chains_that_ran_off(tmp_path, capsys):
    """After 5 epochs the model's density does not fall off: MALA's tuning grew eps to ~1e4
    and the samples landed at ~1e8 for data within 8, written with status 0 and no word. The
    samples are still written (status 0), with one warning line saying what was seen."""
    from scorematch.__main__ import main

    np.save(tmp_path / "d.npy", _clusters())
    m, s = str(tmp_path / "m.npz"), str(tmp_path / "s.npy")
    assert (
        main(["fit", str(tmp_path / "d.npy"), "--out", m, "--epochs", "5", "--hidden", "16,16"])
        == 0
    )
    capsys.readouterr()
    assert main(["sample", m, "-n", "100", "--out", s, "--steps", "50"]) == 0
    assert np.abs(np.load(s)).max() > 1e4  # the runaway, as measured
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert re.fullmatch(
        r"scorematch: warning: the chains ran off: at the samples the model's score points "
        r"away from them \(the mean of s\(x\)\.\(x - c\) per dimension is \+\S+, c their median, "
        r"where samples of a density that falls off give -1\), they reach \S+ from c, and "
        r"MALA's tuning grew the step size to \S+ \(median\); the density does not fall off "
        r"there: train longer \(--epochs\), fit with --standardize if the data are far from 0 "
        r"or not of unit scale, or sample with a smaller --step-size and --burn-in 0 "
        r"\(no tuning\)\n",
        err,
    ), err


@pytest.mark.parametrize(
    ("shift", "standardize"), [((0, 0), False), ((0, 0), True), ((300, -200), True)]
)
def test_cli_sample_gives_no_warning_for_trained_models(tmp_path, capsys, shift, standardize):
    """Models fitted 100 epochs sample the data's region, far from where the chains start
    (N(0, I)) when the data are at (300, -200): no warning, with few chains or many."""
    from scorematch.__main__ import main

    X = _clusters()
    np.save(tmp_path / "d.npy", X - X.mean(axis=0) + shift)
    m, s = str(tmp_path / "m.npz"), str(tmp_path / "s.npy")
    fit = ["fit", str(tmp_path / "d.npy"), "--out", m, "--epochs", "100", "--hidden", "16,16"]
    assert main(fit + (["--standardize"] if standardize else [])) == 0
    for n, steps in [("10", "50"), ("100", "50"), ("100", "1000")]:
        assert main(["sample", m, "-n", n, "--out", s, "--steps", steps]) == 0
        assert np.abs(np.load(s) - shift).max() < 20  # the data's region
        assert capsys.readouterr().err == "", (n, steps)


def test_cli_sample_defaults_are_the_documented_ones(tmp_path, capsys):
    """sample with only -n and --out: MALA, 1000 steps after 200 of burn-in that tune the
    step size from 0.01, seed 0."""
    from scorematch import EnergyMLP
    from scorematch.__main__ import main

    m = EnergyMLP(2, hidden=(4,), seed=1)
    m.save(tmp_path / "m.npz")
    out = tmp_path / "s.npy"
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "3", "--out", str(out)]) == 0
    res = m.sample(
        3, n_steps=1000, step_size=1e-2, method="mala", burn_in=200, seed=0, adapt_step_size=True
    )
    assert np.array_equal(np.load(out), res.samples)
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(
        rf"3 samples \(mala, 1000 steps\) in \d+\.\d\d s -> {re.escape(str(out))}", line
    ), line


def test_cli_sample_adapts_mala_with_one_burn_in_step(tmp_path):
    # One burn-in step is enough to ask MALA for step-size adaptation.
    from scorematch import EnergyMLP
    from scorematch.__main__ import main

    m = EnergyMLP(2, hidden=(4,), seed=1)
    m.save(tmp_path / "m.npz")
    out = tmp_path / "s.npy"
    argv = [
        "sample",
        str(tmp_path / "m.npz"),
        "-n",
        "20",
        "--steps",
        "10",
        "--burn-in",
        "1",
        "--step-size",
        "0.5",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    res = m.sample(
        20, n_steps=10, step_size=0.5, method="mala", burn_in=1, seed=0, adapt_step_size=True
    )
    assert np.array_equal(np.load(out), res.samples)
    plain = m.sample(20, n_steps=10, step_size=0.5, method="mala", burn_in=1, seed=0)
    assert not np.array_equal(res.samples, plain.samples)  # the check can tell them apart


def test_cli_demo_defaults_and_empty_out(monkeypatch):
    """demo passes its documented defaults to scorematch.demo.run (8gaussians, demo.png,
    seed 0, 80 epochs), and --out '' for no figure."""
    import scorematch.demo
    from scorematch.__main__ import main

    calls = []
    monkeypatch.setattr(scorematch.demo, "run", lambda *a, **kw: calls.append((a, kw)))
    assert main(["demo"]) == 0
    assert main(["demo", "--out", "", "--dataset", "moons"]) == 0
    assert calls == [
        (("8gaussians",), {"out": "demo.png", "seed": 0, "epochs": 80}),
        (("moons",), {"out": None, "seed": 0, "epochs": 80}),
    ]


@pytest.mark.parametrize(
    "argv, want",
    [
        ([], "the following arguments are required: command"),
        (["fit", "d.npy"], "the following arguments are required: --out"),
        (["sample", "m.npz"], "the following arguments are required: -n, --out"),
    ],
)
def test_cli_names_missing_arguments(argv, want, capsys):
    from scorematch.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {want}")


def test_cli_reads_csv_data_and_a_single_column(tmp_path):
    """A .csv table fits like the same .npy one; a one-column CSV is (n, 1) data."""
    from scorematch import load
    from scorematch.__main__ import main

    X = np.random.default_rng(0).normal(size=(40, 2))
    np.save(tmp_path / "d.npy", X)
    np.savetxt(tmp_path / "d.csv", X, delimiter=",", fmt="%.17g")
    np.savetxt(tmp_path / "c.csv", X[:, :1], delimiter=",", fmt="%.17g")
    common = ["--epochs", "2", "--hidden", "4"]
    assert main(["fit", str(tmp_path / "d.npy"), "--out", str(tmp_path / "a.npz"), *common]) == 0
    assert main(["fit", str(tmp_path / "d.csv"), "--out", str(tmp_path / "b.npz"), *common]) == 0
    assert same_arrays(load(tmp_path / "a.npz").params, load(tmp_path / "b.npz").params)
    assert main(["fit", str(tmp_path / "c.csv"), "--out", str(tmp_path / "c.npz"), *common]) == 0
    assert load(tmp_path / "c.npz").dim == 1


def test_cli_reads_csv_with_a_header_line_or_a_byte_order_mark(tmp_path):
    """The CSV that DataFrame.to_csv(index=False) writes starts with the column names, and
    Excel's "CSV UTF-8" with a byte-order mark: both fit like the same .npy table."""
    from scorematch import load
    from scorematch.__main__ import main

    X = np.random.default_rng(0).normal(size=(40, 2))
    np.save(tmp_path / "d.npy", X)
    rows = "".join(f"{a},{b}\n" for a, b in X.tolist())  # exact: shortest round trip
    (tmp_path / "header.csv").write_text("a,b\n" + rows)
    (tmp_path / "bom.csv").write_text("x,y\n" + rows, encoding="utf-8-sig")
    (tmp_path / "bom_no_header.csv").write_text(rows, encoding="utf-8-sig")
    common = ["--epochs", "2", "--hidden", "4"]
    assert main(["fit", str(tmp_path / "d.npy"), "--out", str(tmp_path / "d.npz"), *common]) == 0
    want = load(tmp_path / "d.npz").params
    for name in ("header", "bom", "bom_no_header"):
        out = str(tmp_path / f"{name}.npz")
        assert main(["fit", str(tmp_path / f"{name}.csv"), "--out", out, *common]) == 0
        assert same_arrays(load(out).params, want), name


def test_cli_names_the_csv_line_it_cannot_read(tmp_path, capsys, monkeypatch):
    """Only the first line may be a header; any other line that is not numbers is named by
    its number in the file, with what was expected. No data rows is empty data."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "semi.csv").write_text("a,b\n1,2\nx;y\n4,5\n")
    (tmp_path / "ragged.csv").write_text("1,2\n3,4,5\n")
    (tmp_path / "long.csv").write_text("1,2\n" + ",".join(["1.25"] * 20) + ",x\n")
    (tmp_path / "latin1.csv").write_bytes("a,b\n1,2\n3,\xe9\n".encode("latin-1"))
    (tmp_path / "header_only.csv").write_text("a,b\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "fullwidth.csv").write_text("a,b\n1,2\n\uff11,3\n", encoding="utf-8")
    # numpy.loadtxt refused a line of spaces as a row of one field ("the number of columns
    # changed from 2 to 1 at row 1; use `usecols` ..."): blank here, as an empty line is.
    (tmp_path / "blank.csv").write_text("a,b\n1,2\n \n\u00a0\t\n  # note\n3,x\n", encoding="utf-8")
    (tmp_path / "blank_ok.csv").write_text("a,b\n1,2\n \n\u00a0\n  # note\n3,4\n", encoding="utf-8")
    # Lines end at \n, \r\n or \r only, as an editor, `wc -l` and numpy count them: a form
    # feed, a \x85 or a \u2028 inside a line does not end it (str.splitlines would).
    (tmp_path / "odd_ends.csv").write_text("a,b\r\n1,2\x0c\r\n3,4\x85\r5,x\n", newline="")
    (tmp_path / "odd_ends_latin1.csv").write_bytes(b"a,b\r1,2\x0c\r\n\x1c\r\n3,\xe9\n")
    fit = ["--out", "m.npz", "--epochs", "1"]
    expected = "expected comma-separated numbers, one row per line (an optional header line)"
    assert _error(capsys, ["fit", "odd_ends.csv", *fit]) == (
        f"scorematch: error: cannot read 'odd_ends.csv': {expected}, got '5,x' on line 4 "
        "(column 2, 'b', holds 'x', not a number)"
    )
    assert _error(capsys, ["fit", "odd_ends_latin1.csv", *fit]) == (
        "scorematch: error: cannot read 'odd_ends_latin1.csv': expected UTF-8 text, got the "
        "byte 0xe9 on line 4"
    )
    # float() reads digits of other scripts, numpy.loadtxt does not: its message counted rows
    # from 0 past the header ("could not convert string '１' to float64 at row 1, column 1").
    assert _error(capsys, ["fit", "fullwidth.csv", *fit]) == (
        f"scorematch: error: cannot read 'fullwidth.csv': {expected}, got '\uff11,3' on line 3 "
        "(column 1, 'a', holds '\uff11', not a number)"
    )
    assert _error(capsys, ["fit", "blank.csv", *fit]) == (
        f"scorematch: error: cannot read 'blank.csv': {expected}, got '3,x' on line 6 "
        "(column 2, 'b', holds 'x', not a number)"
    )
    from scorematch.__main__ import _read_data

    assert np.array_equal(_read_data("blank_ok.csv").X, [[1.0, 2.0], [3.0, 4.0]])
    assert _error(capsys, ["fit", "semi.csv", *fit]) == (
        f"scorematch: error: cannot read 'semi.csv': {expected}, got 'x;y' on line 3 "
        "(column 1, 'a', holds 'x;y', not a number)"
    )
    assert _error(capsys, ["fit", "ragged.csv", *fit]) == (
        f"scorematch: error: cannot read 'ragged.csv': {expected}, got 3 numbers on line 2 "
        "('3,4,5') where the lines before have 2"
    )
    with open("one.csv", "w") as f:
        f.write("1,2\n3,4\n5\n")
    assert _error(capsys, ["fit", "one.csv", *fit]) == (
        f"scorematch: error: cannot read 'one.csv': {expected}, got 1 number on line 3 "
        "('5') where the lines before have 2"
    )
    # A long line is quoted by its start.
    assert _error(capsys, ["fit", "long.csv", *fit]) == (
        f"scorematch: error: cannot read 'long.csv': {expected}, "
        "got '1.25,1.25,1.25,1.25,1.25,1.25,1.25,1....' on line 2 "
        "(column 21 (counting from 1) holds 'x', not a number)"
    )
    assert _error(capsys, ["fit", "latin1.csv", *fit]) == (
        "scorematch: error: cannot read 'latin1.csv': expected UTF-8 text, got the byte 0xe9 "
        "on line 3"
    )
    for name in ("empty.csv", "header_only.csv"):
        assert _error(capsys, ["fit", name, *fit]) == (
            f"scorematch: error: cannot fit {name!r}: it holds no rows of data"
        )
    assert not (tmp_path / "m.npz").exists()


def test_cli_names_the_csv_column_that_is_not_numbers(tmp_path, capsys, monkeypatch):
    """A column of words (True/False as pandas writes a bool column, a category) was refused
    by its line alone, which a long row quotes cut short: the column is named too, by its
    number from 1 and, in a file with a header line, by its name there."""
    monkeypatch.chdir(tmp_path)
    files = {
        "flag.csv": "x,flag\n1.5,True\n2,False\n",
        "category.csv": '"x","y","colour"\n1,2,"red"\n3,4,"blue"\n',
        "no_header.csv": "1,2\n3,4\n5,False\n",
        "wide.csv": ",".join(f"c{i}" for i in range(30)) + "\n" + "1.25," * 29 + "yes\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    fit = ["--out", "m.npz", "--epochs", "1"]
    expected = "expected comma-separated numbers, one row per line (an optional header line)"
    wide = "1.25,1.25,1.25,1.25,1.25,1.25,1.25,1...."
    for name, line, number, why in [
        ("flag.csv", "1.5,True", 2, "column 2, 'flag', holds 'True', not a number"),
        ("category.csv", '1,2,"red"', 2, "column 3, 'colour', holds 'red', not a number"),
        ("no_header.csv", "5,False", 3, "column 2 (counting from 1) holds 'False', not a number"),
        ("wide.csv", wide, 2, "column 30, 'c29', holds 'yes', not a number"),
    ]:
        assert _error(capsys, ["fit", name, *fit]) == (
            f"scorematch: error: cannot read {name!r}: {expected}, got {line!r} on line "
            f"{number} ({why})"
        ), name
    assert not (tmp_path / "m.npz").exists()


def test_cli_refuses_rows_of_another_width_than_the_header_names(tmp_path, capsys, monkeypatch):
    """A header line of 2 names over rows of 3 numbers was dropped and a model of dim 3
    fitted; over one row of 100 000 numbers, the fit refused it for --validation instead."""
    monkeypatch.chdir(tmp_path)
    files = {
        "wider.csv": "x,y\n" + "1,2,3\n" * 11,
        "narrower.csv": "x,y,z\n1,2\n3,4\n",
        "one_wide_row.csv": "x,y\n" + ",".join(["1"] * 100_000) + "\n",
        "later.csv": "x,y\n1,2\n3,4,5\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    fit = ["--out", "m.npz", "--epochs", "1", "--hidden", "4"]
    expected = "expected comma-separated numbers, one row per line (an optional header line)"
    wide = "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1..."
    for name, got, line, number, names in [
        ("wider.csv", "3 numbers", "1,2,3", 2, "2 columns"),
        ("narrower.csv", "2 numbers", "1,2", 2, "3 columns"),
        ("one_wide_row.csv", "100000 numbers", wide, 2, "2 columns"),
        ("later.csv", "3 numbers", "3,4,5", 3, "2 columns"),
    ]:
        assert _error(capsys, ["fit", name, *fit]) == (
            f"scorematch: error: cannot read {name!r}: {expected}, got {got} on line {number} "
            f"({line!r}) where the header line names {names}"
        ), name
    assert not (tmp_path / "m.npz").exists()


def test_cli_takes_a_first_line_with_an_empty_field_for_data(tmp_path, capsys, monkeypatch):
    """A header line names every column and is not all numbers. A first line with an empty
    field is data, refused like any other line with one: DataFrame.to_csv(header=False)
    writes NaN as an empty field, and such a first row was dropped as a header, silently."""
    from scorematch.__main__ import _read_data

    monkeypatch.chdir(tmp_path)
    files = {
        "missing_last.csv": "1.5,\n3,4\n5,6\n",
        "missing_first.csv": ",2.0\n3,4\n5,6\n",
        "trailing_comma.csv": "1,2,\n3,4,\n",
        "index.csv": ",a,b\n0,1,2\n1,3,4\n",  # DataFrame.to_csv() with its index column
        "quoted_index.csv": '"","a","b"\n0,1,2\n',
        "names.csv": "x,y\n1,2\n3,4\n",
        "quoted.csv": '"a","b"\n1,2\n',
        "mixed.csv": "x,1\n1,2\n",  # a name among numbers: still a header
        "numbers.csv": "1,2\n3,4\n",
        "later.csv": "a,b\n1,\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    fit = ["--out", "m.npz", "--epochs", "1"]
    expected = "expected comma-separated numbers, one row per line (an optional header line)"
    for name, line, number, why in [
        ("missing_last.csv", "1.5,", 1, "field 2 is empty"),
        ("missing_first.csv", ",2.0", 1, "field 1 is empty"),
        ("trailing_comma.csv", "1,2,", 1, "field 3 is empty"),
        ("index.csv", ",a,b", 1, "field 1 is empty: a header line names every column"),
        ("quoted_index.csv", '"","a","b"', 1, "field 1 is empty: a header line names every column"),
        ("later.csv", "1,", 2, "field 2 is empty"),
    ]:
        assert _error(capsys, ["fit", name, *fit]) == (
            f"scorematch: error: cannot read {name!r}: {expected}, got {line!r} on line "
            f"{number} ({why})"
        ), name
    assert not (tmp_path / "m.npz").exists()
    for name, rows in [
        ("names.csv", [[1, 2], [3, 4]]),
        ("quoted.csv", [[1, 2]]),
        ("mixed.csv", [[1, 2]]),
        ("numbers.csv", [[1, 2], [3, 4]]),
    ]:
        assert np.array_equal(_read_data(name).X, rows), name


def test_cli_reads_quoted_numbers_and_names_numbers_too_large(tmp_path, capsys, monkeypatch):
    """pandas' to_csv(quoting=QUOTE_ALL) quotes every field: its data lines were refused, its
    header read. A finite number past float64 (1e400) was called "NaN or Inf"."""
    from scorematch.__main__ import _read_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "quoted.csv").write_text('"a","b"\n"1","2"\n"3","4.5"\n5,6\n')
    (tmp_path / "no_header.csv").write_text('"1","2"\n3,4\n')
    assert np.array_equal(_read_data("quoted.csv").X, [[1, 2], [3, 4.5], [5, 6]])
    assert np.array_equal(_read_data("no_header.csv").X, [[1, 2], [3, 4]])
    (tmp_path / "big.csv").write_text("a,b\n1,2\n3,-1E400\n")
    (tmp_path / "inf.csv").write_text("a,b\n1,2\n-inf,3\n")
    fit = ["--out", "m.npz", "--epochs", "1"]
    assert _error(capsys, ["fit", "big.csv", *fit]) == (
        "scorematch: error: cannot read 'big.csv': the number -1E400 on line 3 is too large "
        "for float64 (at most about 1.8e308)"
    )
    assert _error(capsys, ["fit", "inf.csv", *fit]) == (
        "scorematch: error: cannot fit 'inf.csv': NaN or Inf on line 3 ('-inf,3')"
    )


def test_cli_names_a_long_number_too_large_by_its_length(tmp_path, capsys, monkeypatch):
    """An int of 5000 digits was echoed whole in the message; it is named as the library
    names long ints (past 4300 digits Python would not even convert it), and another long
    number by its start."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "int.csv").write_text("a,b\n" + "9" * 5000 + ",1\n3,4\n")
    (tmp_path / "signed.csv").write_text("1,2\n3,-00" + "7" * 400 + "\n")
    (tmp_path / "float.csv").write_text("a,b\n1,2\n1" + "0" * 400 + ".5,4\n")
    fit = ["--out", "m.npz", "--epochs", "1"]
    too_large = "is too large for float64 (at most about 1.8e308)"
    assert _error(capsys, ["fit", "int.csv", *fit]) == (
        f"scorematch: error: cannot read 'int.csv': an int of 5000 digits on line 2 {too_large}"
    )
    assert _error(capsys, ["fit", "signed.csv", *fit]) == (
        f"scorematch: error: cannot read 'signed.csv': an int of 400 digits on line 2 {too_large}"
    )
    assert _error(capsys, ["fit", "float.csv", *fit]) == (
        "scorematch: error: cannot read 'float.csv': the number "
        f"{'1' + '0' * 36}... on line 3 {too_large}"
    )


def test_cli_prints_a_warning_on_one_line_in_its_own_words(tmp_path, capsys, monkeypatch):
    from scorematch.__main__ import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.csv").write_text("a,b\n3,1\n3,2\n3,5\n3,0.5\n")
    assert main(["fit", "c.csv", "--out", "m.npz", "--epochs", "1", "--hidden", "4"]) == 0
    assert capsys.readouterr().err == (
        "scorematch: warning: column 1 ('a') of the data holds one value in every training "
        "row: along it the data is a point mass, which ISM cannot fit (its loss falls without "
        "bound and the model degenerates); drop it, or use --objective dsm, whose noise gives "
        "the data a density there\n"
    )


def test_cli_warnings_count_columns_from_1_by_their_names(tmp_path, capsys, monkeypatch):
    # The library numbers columns from 0, where the CLI's errors about a file count them from
    # 1 and name them: a user reading "column 1" would have dropped the wrong one.
    from scorematch.__main__ import main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=200), rng.random(200) < 0.3, rng.random(200) < 0.5])
    body = "\n".join(",".join(str(float(v)) for v in row) for row in X) + "\n"
    (tmp_path / "named.csv").write_text('x,flag,"b, c"\n' + body)
    (tmp_path / "plain.csv").write_text(body)
    fit = ["--out", "m.npz", "--epochs", "1", "--hidden", "4"]
    warned = "distinct values: along them the data are point masses"
    assert main(["fit", "named.csv", *fit]) == 0
    assert capsys.readouterr().err.startswith(
        "scorematch: warning: columns 2 ('flag') and 3 ('b, c') of the data take only 2 and "
        f"2 {warned}"
    )
    assert main(["fit", "plain.csv", *fit]) == 0
    assert capsys.readouterr().err.startswith(
        f"scorematch: warning: columns 2 and 3 (counting from 1) of the data take only 2 and "
        f"2 {warned}"
    )


def test_cli_reads_header_names_that_hold_a_comma_or_a_hash(tmp_path, capsys, monkeypatch):
    # pandas writes the name "x, y" quoted: the width check of the header (718d5e6) split it
    # as a data line, and cut a name at "#" as a comment, refusing both files.
    from scorematch.__main__ import main

    monkeypatch.chdir(tmp_path)
    rows = "".join(f"{i},{2 * i},{i % 7}.5\n" for i in range(30))
    (tmp_path / "comma.csv").write_text('"x, y",z,w\n' + rows)
    (tmp_path / "hash.csv").write_text("id,item#,price\n" + rows)
    for name in ("comma.csv", "hash.csv"):
        assert main(["fit", name, "--out", "m.npz", "--epochs", "1", "--hidden", "4"]) == 0
        assert "EnergyMLP(dim=3," in capsys.readouterr().out
    (tmp_path / "short.csv").write_text('"x, y",z\n' + rows)
    assert main(["fit", "short.csv", "--out", "m.npz", "--epochs", "1"]) == 2
    assert "where the header line names 2 columns" in capsys.readouterr().err
    # A comment after the names, as on data lines (its comma named a third column), and a
    # name past the csv module's field limit (an uncaught csv.Error).
    (tmp_path / "comment.csv").write_text("a,b # units: m, s\n1,2\n3,4\n5,6\n")
    (tmp_path / "both.csv").write_text("a,item#,c # units: m, s, t\n1,2,3\n3,4,5\n5,6,7\n")
    (tmp_path / "long.csv").write_text("a" * 140_000 + ",b\n1,2\n3,4\n5,6\n")
    for name, dim in (("comment.csv", 2), ("both.csv", 3), ("long.csv", 2)):
        assert main(["fit", name, "--out", "m.npz", "--epochs", "1", "--hidden", "4"]) == 0
        assert f"EnergyMLP(dim={dim}," in capsys.readouterr().out


def test_cli_errors_count_columns_from_1_by_their_names(tmp_path, capsys, monkeypatch):
    # As the warnings: the library's "column 1 of X" is the file's second column.
    from scorematch.__main__ import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.csv").write_text("p,q\n1,0\n2,1e-305\n3,0\n4,1e-305\n")
    fit = ["--out", "m.npz", "--epochs", "1", "--validation", "0", "--standardize"]
    assert main(["fit", "tiny.csv", *fit]) == 2
    assert capsys.readouterr().err.startswith(
        "scorematch: error: --standardize: the spread of column 2 ('q') of the data (5.0e-306) "
        "is too small"
    )


def test_cli_names_the_projection_option(tmp_path, capsys, monkeypatch):
    from scorematch.__main__ import main

    monkeypatch.chdir(tmp_path)
    np.savetxt("d.csv", np.random.default_rng(0).normal(size=(20, 2)), delimiter=",")
    assert main(["fit", "d.csv", "--out", "m.npz", "--projection", "rademacher"]) == 2
    assert capsys.readouterr().err == (
        "scorematch: error: --projection is only used by objective 'ssm', not 'ism' "
        "(got 'rademacher')\n"
    )


def test_cli_takes_file_suffixes_in_any_case(tmp_path, capsys, monkeypatch):
    """DATA.CSV and DATA.NPY are read, S.CSV and S.NPY written, at exactly those names."""
    from scorematch.__main__ import main

    monkeypatch.chdir(tmp_path)
    X = np.random.default_rng(0).normal(size=(40, 2))
    np.savetxt("DATA.CSV", X, delimiter=",")
    with open("DATA.NPY", "wb") as f:  # np.save given a name would add ".npy"
        np.save(f, X)
    fit = ["--out", "m.npz", "--epochs", "1", "--hidden", "4"]
    assert main(["fit", "DATA.CSV", *fit]) == 0
    assert main(["fit", "DATA.NPY", *fit]) == 0
    for out in ("S.CSV", "S.NPY"):
        assert main(["sample", "m.npz", "-n", "3", "--steps", "2", "--out", out]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "DATA.CSV",
        "DATA.NPY",
        "S.CSV",
        "S.NPY",
        "m.npz",
    ]
    assert np.loadtxt("S.CSV", delimiter=",").shape == (3, 2)
    assert np.load("S.NPY").shape == (3, 2)


def _error(capsys, argv):
    from scorematch.__main__ import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_cli_fit_passes_every_training_option(tmp_path, capsys, monkeypatch):
    # The objectives the CLI offers with the options they need (--n-projections for ssm),
    # and the fit options of the API: the saved model is the API's fit, bit for bit.
    from scorematch.__main__ import main

    monkeypatch.chdir(tmp_path)
    X = 3.0 + 2.0 * np.random.default_rng(0).normal(size=(120, 2))
    np.save("d.npy", X)
    argv = ["fit", "d.npy", "--out", "m.npz", "--hidden", "8", "--epochs", "3", "--seed", "5",
            "--objective", "ssm", "--n-projections", "2", "--projection", "rademacher",
            "--optimizer", "sgd", "--weight-decay", "0.01", "--validation", "0",
            "--patience", "1", "--standardize"]  # fmt: skip
    assert main(argv) == 0
    want = EnergyMLP(2, hidden=(8,), seed=5)
    hist = want.fit(X, objective="ssm", n_projections=2, projection="rademacher",
                    optimizer="sgd", weight_decay=0.01, validation=0, patience=1,
                    standardize=True, epochs=3, seed=5, progress=False)  # fmt: skip
    assert same_arrays(sm_load("m.npz").params, want.params)
    assert f"{hist.n_epochs} epochs" in capsys.readouterr().out


def test_cli_fit_help_shows_its_percent_sign(capsys):
    # argparse %-formats help strings but not descriptions: "10%%" there printed as is.
    from scorematch.__main__ import main

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(--validation, 10% by default)" in out and "%%" not in out


def test_cli_errors_name_the_options_typed(tmp_path, capsys, monkeypatch):
    # The API's checks name its parameters (n_steps, step_size, ...): on the command line the
    # message names the option instead.
    monkeypatch.chdir(tmp_path)
    np.save("d.npy", np.random.default_rng(0).normal(size=(40, 2)))
    EnergyMLP(2, hidden=(4,)).save("m.npz")
    cases = [
        (["sample", "m.npz", "-n", "4", "--out", "s.npy", "--steps", "0"],
         "--steps must be at least 1, got 0"),
        (["sample", "m.npz", "-n", "-1", "--out", "s.npy"], "-n must be at least 0, got -1"),
        (["sample", "m.npz", "-n", "4", "--out", "s.npy", "--step-size", "0"],
         "--step-size must be a finite number > 0, got 0.0"),
        (["sample", "m.npz", "-n", "4", "--out", "s.npy", "--burn-in", "-1"],
         "--burn-in must be at least 0, got -1"),
        (["fit", "d.npy", "--out", "m2.npz", "--batch-size", "0"],
         "--batch-size must be at least 1, got 0"),
        (["fit", "d.npy", "--out", "m2.npz", "--objective", "dsm"],
         "objective 'dsm' needs --noise-std (a number > 0)"),
        # Options named as their parameter, where the message opens with the rule on them.
        (["fit", "d.npy", "--out", "m2.npz", "--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["fit", "d.npy", "--out", "m2.npz", "--lr", "-1"],
         "--lr must be a finite number > 0, got -1.0"),
        (["fit", "d.npy", "--out", "m2.npz", "--alpha", "nan"],
         "--alpha must be a finite number >= 0, got nan"),
        (["fit", "d.npy", "--out", "m2.npz", "--patience", "-1"],
         "--patience must be at least 1, got -1"),
        (["fit", "d.npy", "--out", "m2.npz", "--seed", "-1"],
         "--seed must be in [0, 2**64), got -1"),
        (["sample", "m.npz", "-n", "4", "--out", "s.npy", "--seed", str(2**64)],
         f"--seed must be in [0, 2**64), got {2**64}"),
        (["fit", "d.npy", "--out", "m2.npz", "--validation", "0.999"],
         ("--validation 0.999 leaves no training rows out of 40: pass more rows or a smaller "
          "fraction")),
    ]  # fmt: skip
    for argv, message in cases:
        assert _error(capsys, argv) == f"scorematch: error: {message}", argv


def test_cli_names_the_file_and_line_of_data_the_fit_refuses(tmp_path, capsys, monkeypatch):
    """The API's checks name rows of "X" from 0 past the header ("X contains NaN or Inf
    (first at row 4)" for line 7 of a CSV file): the command line names the file, and a
    CSV file's line as counted in the file, quoted; an .npy file's row counted from 0."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nan.csv").write_text("a,b\n1,2\n3,4\n\n# note\n5,6\nnan,1\n9,9\n")
    (tmp_path / "inf.csv").write_text("1,2\n-inf,3\n")
    (tmp_path / "big.csv").write_text("a,b\n1,2\n1e300,1\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("x,y\n")
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[7, 1] = np.nan
    np.save("nan.npy", X)
    np.save("big.npy", [[1.0, 2.0], [1.0, -1e300]])
    np.save("bool.npy", np.ones((4, 2), dtype=bool))
    np.save("complex.npy", np.ones((4, 2), dtype=complex))
    np.save("empty.npy", np.zeros((0, 2)))
    np.save("no_columns.npy", np.zeros((5, 0)))
    fit = ["--out", "m.npz", "--epochs", "1"]
    cases = [
        ("nan.csv", [], "NaN or Inf on line 7 ('nan,1')"),
        ("inf.csv", [], "NaN or Inf on line 2 ('-inf,3')"),
        ("nan.npy", [], "NaN or Inf in row 7 (counted from 0)"),
        ("empty.csv", [], "it holds no rows of data"),
        ("header_only.csv", [], "it holds no rows of data"),
        ("empty.npy", [], "it holds no rows of data"),
        (
            "no_columns.npy",
            [],
            "expected a 2-D table (n, dim) of at least one column, got shape (5, 0)",
        ),
        ("bool.npy", [], "expected numbers, got an array of dtype bool"),
        ("complex.npy", [], "expected numbers, got an array of dtype complex128"),
    ]
    for name, options, message in cases:
        assert _error(capsys, ["fit", name, *fit, *options]) == (
            f"scorematch: error: cannot fit {name!r}: {message}"
        ), name
    too_large = "values too large for float32 (|x| > 3.4e38)"
    for name, where in [
        ("big.csv", "on line 3 ('1e300,1')"),
        ("big.npy", "in row 1 (counted from 0)"),
    ]:
        assert _error(capsys, ["fit", name, *fit, "--dtype", "float32"]) == (
            f"scorematch: error: cannot fit {name!r} with --dtype float32: {too_large} {where}; "
            "rescale the data or use --dtype float64"
        ), name
    assert not (tmp_path / "m.npz").exists()


def test_cli_option_errors_speak_of_the_options(tmp_path, capsys, monkeypatch):
    """--validation 1 was refused as "must be a fraction in [0, 1), an array X_val or None",
    the API's wording: an array or None cannot be given on the command line. Option errors
    come before the data is read (here it does not exist)."""
    monkeypatch.chdir(tmp_path)
    fit = ["fit", "missing.npy", "--out", "m.npz"]
    for value, shown in [("1", "1.0"), ("-0.5", "-0.5"), ("nan", "nan"), ("inf", "inf")]:
        assert _error(capsys, [*fit, "--validation", value]) == (
            "scorematch: error: --validation must be the fraction of the rows held out, in "
            f"[0, 1) (0 for none), got {shown}"
        )
    assert _error(capsys, [*fit, "--standardize", "--alpha", "0.5"]) == (
        "scorematch: error: --standardize needs --alpha 0: the confining term (alpha/2)|x|^2 "
        "has no exact counterpart in standardized coordinates, got --alpha 0.5"
    )
    # The data's own refusals of --standardize spoke of "X" and "standardize=False".
    rng = np.random.default_rng(0)
    np.save(tmp_path / "tiny.npy", np.c_[np.tile([1e-305, -1e-305], 10), rng.normal(size=20)])
    fit = ["--out", "m.npz", "--epochs", "1", "--standardize"]
    assert _error(capsys, ["fit", "tiny.npy", *fit]) == (
        "scorematch: error: --standardize: the spread of column 1 (counting from 1) of the data "
        "(1.0e-305) is too "
        "small for a float64 model: its first layer in the data's units would overflow; "
        "rescale the data or leave out --standardize"
    )
    from scorematch.__main__ import _in_option_names

    assert _in_option_names("standardize=True: the mean or spread of X overflows; rescale X") == (
        "--standardize: the mean or spread of the data overflows; rescale the data"
    )


def test_cli_data_file_errors_are_named_exactly(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("1,2\n3,4\n")
    np.save(tmp_path / "flat.npy", np.zeros(10))
    np.save(tmp_path / "obj.npy", np.array([[1.0, None]], dtype=object), allow_pickle=True)
    fit = ["--out", "m.npz", "--epochs", "1"]
    assert _error(capsys, ["fit", "missing.npy", *fit]) == (
        "scorematch: error: no data file at 'missing.npy'"
    )
    assert _error(capsys, ["fit", "data.txt", *fit]) == (
        "scorematch: error: data must be a .npy or .csv file, got 'data.txt'"
    )
    assert _error(capsys, ["fit", "flat.npy", *fit]) == (
        "scorematch: error: cannot fit 'flat.npy': expected a 2-D table (n, dim), got shape (10,)"
    )
    # Never unpickle: a .npy of Python objects is refused as unreadable.
    assert _error(capsys, ["fit", "obj.npy", *fit]) == (
        "scorematch: error: cannot read 'obj.npy': Object arrays cannot be loaded when "
        "allow_pickle=False"
    )
    assert not (tmp_path / "m.npz").exists()


def test_cli_names_npy_data_of_another_format(tmp_path, capsys, monkeypatch):
    """np.load read an .npz named .npy as an NpzFile (AttributeError traceback) and
    refused a pickle with advice to load it with allow_pickle."""
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "archive.npy", "wb") as f:
        np.savez(f, x=np.zeros((3, 2)))
    (tmp_path / "pickled.npy").write_bytes(pickle.dumps(np.zeros((3, 2))))
    (tmp_path / "empty.npy").write_bytes(b"")
    fit = ["--out", "m.npz", "--epochs", "1"]
    assert _error(capsys, ["fit", "archive.npy", *fit]) == (
        "scorematch: error: cannot read 'archive.npy': expected an .npy array, got an .npz archive"
    )
    assert _error(capsys, ["fit", "pickled.npy", *fit]) == (
        "scorematch: error: cannot read 'pickled.npy': expected an .npy array, got a file in "
        "another format"
    )
    assert _error(capsys, ["fit", "empty.npy", *fit]) == (
        "scorematch: error: cannot read 'empty.npy': expected an .npy array, got an empty file"
    )
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    "header",
    [
        b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), '''}",
        b"{'descr': '<f8', 'fortran_order': False, 'shape': (True, 2)}",
    ],
    ids=["not-tokens", "bool-shape"],
)
def test_cli_names_an_npy_header_numpy_cannot_parse(tmp_path, capsys, monkeypatch, header):
    """numpy raised tokenize.TokenError (a traceback) or TypeError ("an integer is
    required", naming no file)."""
    monkeypatch.chdir(tmp_path)
    header = header.ljust(117) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(48)
    (tmp_path / "data.npy").write_bytes(npy)
    assert _error(capsys, ["fit", "data.npy", "--out", "m.npz", "--epochs", "1"]) == (
        "scorematch: error: cannot read 'data.npy': its .npy header is malformed"
    )


def test_cli_names_an_expression_in_an_npy_header_by_its_type(tmp_path, capsys, monkeypatch):
    """ast.literal_eval's refusal quoted the node by its address ("<ast.Call object at
    0x7f...>"), a different message on every run."""
    monkeypatch.chdir(tmp_path)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': __import__('os')}"
    header = header.ljust(117) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(48)
    (tmp_path / "data.npy").write_bytes(npy)
    assert _error(capsys, ["fit", "data.npy", "--out", "m.npz", "--epochs", "1"]) == (
        "scorematch: error: cannot read 'data.npy': malformed node or string on line 1: "
        "ast.Call (.npy headers hold literals only)"
    )


def test_cli_sample_refuses_other_output_formats(tmp_path, capsys):
    from scorematch import EnergyMLP

    EnergyMLP(2, hidden=(4,)).save(tmp_path / "m.npz")
    out = str(tmp_path / "s.txt")
    argv = ["sample", str(tmp_path / "m.npz"), "-n", "2", "--steps", "2", "--out", out]
    assert _error(capsys, argv) == (
        f"scorematch: error: output must be a .npy or .csv file, got {out!r}"
    )
    assert list(tmp_path.iterdir()) == [tmp_path / "m.npz"]


def test_cli_reports_an_interrupt_with_status_130(tmp_path, capsys, monkeypatch):
    import scorematch
    from scorematch.__main__ import main

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(scorematch, "load", interrupted)
    assert main(["info", str(tmp_path / "m.npz")]) == 130
    assert capsys.readouterr().err == "scorematch: interrupted\n"


@pytest.mark.parametrize("epochs_done", [0, 2])
def test_cli_fit_interrupted_saves_the_model_and_exits_130(
    tmp_path, capsys, monkeypatch, epochs_done
):
    # Ctrl-C inside EnergyMLP.fit returns its history with stop_reason "interrupted" (the
    # model at its last completed step); here fit is stood in for, to stop at a known point.
    import scorematch
    from scorematch import load
    from scorematch.__main__ import main

    def interrupted(self, X, **kwargs):
        losses = [-1.0 - e for e in range(epochs_done)]
        return scorematch.FitHistory(
            train_loss=losses, val_loss=losses, seconds=0.5, stop_reason="interrupted"
        )

    monkeypatch.setattr(scorematch.EnergyMLP, "fit", interrupted)
    np.save(tmp_path / "d.npy", np.zeros((10, 2)))
    out = tmp_path / "m.npz"
    argv = ["fit", str(tmp_path / "d.npy"), "--out", str(out), "--hidden", "3"]
    assert main(argv) == 130
    assert load(out).hidden == (3,)
    captured = capsys.readouterr()
    last = (
        "no epoch completed"
        if epochs_done == 0
        else "last epoch's validation loss -2, model as of its last completed step"
    )
    assert f"{epochs_done} epochs in 0.50 s, {last} (interrupted); saved to" in captured.out
    assert captured.err == "scorematch: interrupted\n"


def test_cli_fit_summary_gives_the_saved_best_epoch_and_its_loss(tmp_path, capsys):
    """fit restores the epoch of lowest validation loss, so the summary names that epoch and
    its loss, which is the saved model's loss on the held-out rows: here epoch 38 of 40 at
    -24.615, where the last epoch's was -17.641."""
    from scorematch import EnergyMLP, datasets, load
    from scorematch.__main__ import main

    X = datasets.get("8gaussians").sample(400, seed=0)[:60]
    np.save(tmp_path / "small.npy", X)
    m_path = str(tmp_path / "m.npz")
    opts = ["--hidden", "16,16", "--epochs", "40", "--lr", "0.05", "--batch-size", "16"]
    assert main(["fit", str(tmp_path / "small.npy"), "--out", m_path, *opts]) == 0
    want = EnergyMLP(2, hidden=(16, 16), seed=0)
    hist = want.fit(X, epochs=40, lr=0.05, batch_size=16, progress=False)
    best = hist.best_epoch
    assert best is not None and best < hist.n_epochs - 1  # the case the summary got wrong
    loss = hist.val_loss[best]
    out = capsys.readouterr().out.strip()
    tail = f"kept best epoch {best + 1} of 40, validation loss {loss:.5g} (completed); "
    tail += f"saved to {m_path}"
    assert re.fullmatch(rf".* on 60 rows: 40 epochs in \d+\.\d\d s, {re.escape(tail)}", out), out
    # The 6 held-out rows, drawn as fit draws them (10% of 60, from the seed).
    held_out = X[np.sort(np.random.default_rng([0, 0x5EED]).permutation(60)[:6])]
    assert load(m_path).ism_loss(held_out) == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize(
    ("val_loss", "best_epoch", "want"),
    [
        ([-3.0, -2.5, -1.0], 0, "kept best epoch 1 of 3, validation loss -3"),
        ([], 1, "last epoch's training loss -1.5"),
    ],
)
def test_cli_fit_summary_names_the_loss_of_the_saved_model(
    tmp_path, capsys, monkeypatch, val_loss, best_epoch, want
):
    """The best epoch's validation loss when fit restored it; without validation fit keeps
    the last epoch's parameters, and the summary gives that epoch's training loss."""
    import scorematch
    from scorematch.__main__ import main

    def fitted(self, X, **kwargs):
        return scorematch.FitHistory(
            train_loss=[-1.0, -2.0, -1.5], val_loss=val_loss, seconds=0.5, best_epoch=best_epoch
        )

    monkeypatch.setattr(scorematch.EnergyMLP, "fit", fitted)
    np.save(tmp_path / "d.npy", np.zeros((10, 2)))
    out = tmp_path / "m.npz"
    assert main(["fit", str(tmp_path / "d.npy"), "--out", str(out), "--hidden", "3"]) == 0
    assert f"3 epochs in 0.50 s, {want} (completed); saved to {out}\n" in capsys.readouterr().out


def test_cli_checks_output_paths_before_any_work(tmp_path, capsys, monkeypatch):
    # The data and model files do not exist: the output path is refused first.
    monkeypatch.chdir(tmp_path)
    assert _error(capsys, ["fit", "missing.npy", "--out", "nofolder/m.npz"]) == (
        "scorematch: error: no folder 'nofolder' to write 'nofolder/m.npz' in"
    )
    assert _error(capsys, ["sample", "missing.npz", "-n", "2", "--out", "s.txt"]) == (
        "scorematch: error: output must be a .npy or .csv file, got 's.txt'"
    )
    assert _error(capsys, ["sample", "missing.npz", "-n", "2", "--out", "no/s.npy"]) == (
        "scorematch: error: no folder 'no' to write 'no/s.npy' in"
    )
    assert _error(capsys, ["fit", "missing.npy", "--out", ""]) == (
        "scorematch: error: output must name a file, got ''"
    )
    assert _error(capsys, ["fit", "missing.npy", "--out", "."]) == (
        "scorematch: error: output must name a file, got '.'"
    )
    assert list(tmp_path.iterdir()) == []


def _unwritable_folder(tmp_path):
    """A folder in which no file can be created, for root too (who ignores permission bits,
    so that a folder without write permission is tried, then /proc and /sys)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for folder in (str(locked), "/proc", "/sys"):
        try:
            with tempfile.NamedTemporaryFile(dir=folder):
                pass
        except OSError:
            return folder
    pytest.skip("no folder here refuses new files")


def _unwritable_file(tmp_path):
    """A .npz path to an existing file that cannot be opened for writing, for root too."""
    locked = tmp_path / "locked.npz"
    locked.write_bytes(b"")
    locked.chmod(0o444)
    notes = tmp_path / "notes.npz"  # a sysfs file, which root cannot open for writing either
    notes.symlink_to("/sys/kernel/notes")
    for path in (locked, notes):
        if not path.is_file():
            continue  # no sysfs here: a dangling link
        try:
            os.close(os.open(path, os.O_WRONLY))
        except OSError:
            return str(path)
    pytest.skip("no file here refuses to be written")


def test_cli_checks_that_output_paths_can_be_written_before_any_work(tmp_path, capsys, monkeypatch):
    """A folder that refuses new files, or an existing file that refuses to be written, was
    found only by the write after the work (fit trained, then said "[Errno 2] No such file or
    directory: '/proc/m.npz'"). The data and model files do not exist: the output is refused
    first."""
    monkeypatch.chdir(tmp_path)
    folder = _unwritable_folder(tmp_path)
    for argv, out in [
        (["fit", "missing.npy", "--out"], os.path.join(folder, "m.npz")),
        (["sample", "missing.npz", "-n", "2", "--out"], os.path.join(folder, "s.npy")),
    ]:
        err = _error(capsys, [*argv, out])
        assert err.startswith(
            f"scorematch: error: cannot create {out!r}: its folder {folder!r} refuses new files ("
        ), err
    out = _unwritable_file(tmp_path)
    err = _error(capsys, ["fit", "missing.npy", "--out", out])
    assert err.startswith(f"scorematch: error: cannot write {out!r}: "), err


def test_cli_refuses_to_write_over_its_input_and_a_model_without_npz(tmp_path, capsys, monkeypatch):
    """fit --out d.npy with the data's own path replaced the data by the model; sample the
    model by its samples. A model file is an .npz archive: fit's --out says so (in any case)."""
    monkeypatch.chdir(tmp_path)
    X = np.random.default_rng(0).normal(size=(20, 2))
    np.save("d.npy", X)
    Path("link.npz").symlink_to("d.npy")
    EnergyMLP(2, hidden=(3,)).save("model.npy")
    model = Path("model.npy").read_bytes()
    fit = ["--epochs", "1", "--hidden", "3"]
    assert _error(capsys, ["fit", "d.npy", "--out", "d.npy", *fit]) == (
        "scorematch: error: output 'd.npy' would overwrite the data file 'd.npy'"
    )
    assert _error(capsys, ["fit", "d.npy", "--out", "link.npz", *fit]) == (
        "scorematch: error: output 'link.npz' would overwrite the data file 'd.npy'"
    )
    assert _error(capsys, ["sample", "model.npy", "-n", "2", "--out", "model.npy"]) == (
        "scorematch: error: output 'model.npy' would overwrite the model file 'model.npy'"
    )
    assert np.array_equal(np.load("d.npy"), X) and Path("model.npy").read_bytes() == model
    for out in ("model", "m.npy", "m.npz.tmp"):
        assert _error(capsys, ["fit", "missing.npy", "--out", out]) == (
            f"scorematch: error: output must be a .npz file, got {out!r}"
        )
    from scorematch.__main__ import main

    assert main(["fit", "d.npy", "--out", "M.NPZ", *fit]) == 0
    assert sm_load("M.NPZ").hidden == (3,)
    # The test of the folder leaves no file behind.
    assert sorted(os.listdir()) == ["M.NPZ", "d.npy", "link.npz", "model.npy"]


def test_cli_refuses_an_output_path_ending_in_a_separator(tmp_path, capsys, monkeypatch):
    """'new/' names a folder whether or not it exists: refused like '.', before any work
    (here the data and model files do not exist), and no folder is made."""
    monkeypatch.chdir(tmp_path)
    assert _error(capsys, ["fit", "missing.npy", "--out", "newdir/"]) == (
        "scorematch: error: output must name a file, got 'newdir/'"
    )
    assert _error(capsys, ["sample", "missing.npz", "-n", "2", "--out", "s.npy/"]) == (
        "scorematch: error: output must name a file, got 's.npy/'"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command, shown",
    [
        ("demo", ["8gaussians", "demo.png", "80"]),
        ("fit", ["ism", "64,64,64", "softplus", "float64", "0.0", "100", "256", "0.001", "0"]),
        ("sample", ["mala", "1000", "200", "0.01", "0"]),
    ],
)
def test_cli_help_gives_each_options_default(command, shown, capsys):
    from scorematch.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert [d for d in shown if f"(default: {d})" not in text] == []
    assert "%(" not in text  # every %(default)s expanded


def _naive_mmd2(x, y, bw):
    """Unbiased MMD² with k(a, b) = exp(-|a - b|² / (2 bw²)), pair by pair."""

    def k(a, b):
        return np.exp(-(((a[:, None] - b[None]) ** 2).sum(-1)) / (2 * bw**2))

    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    off_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    off_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return off_x + off_y - 2 * k(x, y).mean()


def test_demo_prints_and_returns_what_it_measured(monkeypatch, capsys):
    """Every printed figure and every field of the result, against the demo's recipe run by
    hand (80 epochs of ISM, 300 MALA chains from N(0, 4 I)): timings from a stopped clock,
    the fit's gradient steps (569 points: 57 held out, 512 training rows, 2 steps per epoch
    where ⌈0.9·569/256⌉ = 3 was printed), losses, acceptance, both MMD² (bandwidth from the
    first 500 of the 600 pooled points) and the Fisher divergence; no progress bars."""
    import types

    import scorematch.demo
    from scorematch import datasets, get_num_threads

    # Not from 0, where end + start (a wrong sign) would equal end - start.
    ticks = iter([1.0, 1.375, 2.0, 2.0 + 2.0**-10])
    clock = types.SimpleNamespace(perf_counter=lambda: next(ticks))
    monkeypatch.setattr(scorematch.demo, "time", clock)
    r = run("8gaussians", out=None, seed=3, n_train=569, n_samples=300, n_steps=10)
    ds = datasets.get("8gaussians")
    model = EnergyMLP(2, hidden=(64, 64, 64), activation="softplus", alpha=1e-3, seed=3)
    held_out = ds.sample(2000, seed=4)
    untrained = model.ism_loss(held_out)
    model.fit(
        ds.sample(569, seed=3),
        epochs=80,
        batch_size=256,
        lr=5e-3,
        seed=3,
        progress=False,
    )
    init = 2.0 * np.random.default_rng(5).standard_normal((300, 2))
    res = model.sample(300, n_steps=10, step_size=0.01, method="mala", burn_in=5,
                       adapt_step_size=True, init=init, seed=3)  # fmt: skip
    exact = ds.sample(300, seed=6)
    pooled = np.concatenate([exact, res.samples])[:500]
    bw = float(np.median(np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))))
    fisher = np.mean(((model.score(held_out) - ds.score(held_out)) ** 2).sum(1))
    ref = np.mean((ds.score(held_out) ** 2).sum(1))
    assert (r.fit_seconds, r.sample_seconds) == (0.375, 2.0**-10)
    assert (r.heldout_ism, r.untrained_ism) == (model.ism_loss(held_out), untrained)
    assert r.mmd == pytest.approx(_naive_mmd2(res.samples, exact, bw), abs=1e-12)
    assert r.mmd_null == pytest.approx(_naive_mmd2(ds.sample(300, seed=7), exact, bw), abs=1e-12)
    assert r.fisher_divergence == pytest.approx(fisher, rel=1e-12)
    assert r.figure is None
    printed = capsys.readouterr()
    assert printed.err == ""
    assert printed.out.splitlines() == [
        f"scorematch demo: 8gaussians, 569 points; {model!r}; {get_num_threads()} threads",
        (
            "  fit: 80 epochs of implicit score matching in 0.38 s (427 exact-Hessian-trace "
            "gradient steps/s), stop: completed"
        ),
        f"  held-out ISM loss: {r.heldout_ism:.4f} (untrained model: {untrained:.4f})",
        (
            "  sample: 300 MALA chains x 10 steps in 0.00 s (3.07 M chain-steps/s), "
            f"acceptance {res.acceptance_rate.mean():.2f}"
        ),
        f"  MMD² to exact samples: {r.mmd:.2e} (two exact sample sets: {r.mmd_null:.2e})",
        f"  Fisher divergence E|s_model - s_true|^2: {fisher:.4f} (E|s_true|^2 = {ref:.2f})",
    ]


@pytest.mark.parametrize(("n_train", "rate"), [(600, "8"), (2, "3")])
def test_demo_counts_every_batch_it_fits_as_a_step(monkeypatch, capsys, n_train, rate):
    """600 points: 60 held out, 540 training rows in 3 batches, the last one partial; 2
    points: 1 held out, 1 training row, 1 batch. In 0.375 s: 8 and 2.67 steps/s."""
    import types

    import scorematch.demo

    ticks = iter([1.0, 1.375, 2.0, 3.0])
    clock = types.SimpleNamespace(perf_counter=lambda: next(ticks))
    monkeypatch.setattr(scorematch.demo, "time", clock)
    run(out=None, n_train=n_train, epochs=1, n_samples=10, n_steps=2)
    fit = capsys.readouterr().out.splitlines()[1]
    assert fit.startswith(f"  fit: 1 epochs of implicit score matching in 0.38 s ({rate} exact-")


def test_mmd2_is_the_unbiased_estimate_with_a_gaussian_kernel():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 2)), rng.normal(0.5, 1.0, size=(5, 2))
    assert mmd2(x, y, 0.8) == pytest.approx(_naive_mmd2(x, y, 0.8), abs=1e-14)
    # Two points each, one apart within each set, √2 apart across: 2e^{-1/2} - 2e^{-1}.
    a, b = np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 1.0]])
    want = 2 * np.exp(-0.5) - 2 * (np.exp(-0.5) + np.exp(-1.0)) / 2
    assert mmd2(a, b, 1.0) == pytest.approx(want, abs=1e-15)


def test_demo_figure_shows_the_data_samples_energy_and_scores(tmp_path, monkeypatch):
    """What the figure holds: the first 3000 training points and the samples over the
    energy's contours (shifted to a minimum of 0, on a 200 × 200 grid), the score field as
    21 × 21 arrows scaled to a longest of 1, both panels on ±1.1·max|x|, written at
    11 × 5.2 inches and 110 dpi."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes
    import matplotlib.collections
    import matplotlib.figure
    import matplotlib.quiver
    import scorematch.demo

    figures, plots, contours = [], [], []
    real_savefig, real_plot = matplotlib.figure.Figure.savefig, scorematch.demo._plot
    real_contour = matplotlib.axes.Axes.contour

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return real_savefig(self, *args, **kwargs)

    def plot(*args):
        plots.append(args)
        return real_plot(*args)

    def contour(self, *args, **kwargs):
        contours.append((self, real_contour(self, *args, **kwargs)))
        return contours[-1][1]

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    monkeypatch.setattr(scorematch.demo, "_plot", plot)
    monkeypatch.setattr(matplotlib.axes.Axes, "contour", contour)
    out = tmp_path / "fig.png"
    small = {"n_train": 3002, "epochs": 1, "n_samples": 50, "n_steps": 10, "verbose": False}
    r = run("8gaussians", out=str(out), **small)
    ((model, X, S, _, _, _),) = plots
    (fig,) = figures
    assert r.figure == str(out) and X.shape == (3002, 2) and S.shape == (50, 2)
    # The PNG's width and height (IHDR): 11 × 5.2 inches at 110 dpi.
    assert int.from_bytes(out.read_bytes()[16:20], "big") == 1210
    assert int.from_bytes(out.read_bytes()[20:24], "big") == 572
    assert fig._suptitle.get_text() == (
        "scorematch: energy contours, score field (left) and samples (right)"
    )
    lim = 1.1 * np.abs(X).max()
    g = np.linspace(-lim, lim, 200)
    E = model.energy(np.stack([a.ravel() for a in np.meshgrid(g, g)], 1))
    left, right = fig.axes
    assert [ax for ax, _ in contours] == [left, right]
    for ax, pts, title in [(left, X, "data"), (right, S, "Langevin (MALA) samples")]:
        assert ax.get_title() == f"8gaussians: {title}"
        assert ax.get_xlim() == ax.get_ylim() == pytest.approx((-lim, lim), rel=1e-15)
        (dots,) = [c for c in ax.collections if type(c) is matplotlib.collections.PathCollection]
        np.testing.assert_array_equal(dots.get_offsets(), pts[:3000])
    for _, levels in contours:
        assert levels.zmin == 0.0 and levels.zmax == pytest.approx(np.ptp(E), rel=1e-12)
    (arrows,) = [c for c in left.collections if isinstance(c, matplotlib.quiver.Quiver)]
    a = np.linspace(-lim, lim, 21)
    at = np.stack([v.ravel() for v in np.meshgrid(a, a)], 1)
    np.testing.assert_allclose(arrows.X, at[:, 0], rtol=1e-15)
    np.testing.assert_allclose(arrows.Y, at[:, 1], rtol=1e-15)
    s = model.score(at)
    s /= np.linalg.norm(s, axis=1).max()
    np.testing.assert_allclose(np.stack([arrows.U, arrows.V], 1), s, rtol=1e-12)
    assert not [c for c in right.collections if isinstance(c, matplotlib.quiver.Quiver)]


def test_cli_names_an_npy_header_too_long_to_read_safely_on_one_line(tmp_path, capsys, monkeypatch):
    """numpy's refusal went on over two more lines advising max_header_size or
    allow_pickle=True."""
    monkeypatch.chdir(tmp_path)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }".ljust(20059) + b"\n"
    npy = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + bytes(48)
    (tmp_path / "data.npy").write_bytes(npy)
    assert _error(capsys, ["fit", "data.npy", "--out", "m.npz", "--epochs", "1"]) == (
        "scorematch: error: cannot read 'data.npy': Header info length (20060) is large and may "
        "not be safe to load securely."
    )


def test_cli_names_an_npy_header_declaring_more_data_than_the_file(tmp_path):
    """numpy's "Unable to allocate 14.6 TiB for an array with shape (2000000000000,)" read
    as the machine's shortage, for a file of 208 bytes. In a subprocess, with its address
    space limited, so that the allocation fails on any machine."""
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 2), }"
    header = header.ljust(117) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(80)
    (tmp_path / "data.npy").write_bytes(npy)
    script = (
        "import resource, sys; from scorematch.__main__ import main; "
        "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
        "sys.exit(main(['fit', 'data.npy', '--out', 'm.npz']))"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert r.returncode == 2
    assert r.stderr == (
        "scorematch: error: cannot read 'data.npy': its header declares 16000000000000 bytes of "
        "data, more than the whole file holds (208 bytes)\n"
    )
