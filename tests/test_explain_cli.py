import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import statebatch as sb
from statebatch.cli import main


def test_explain_stateless_seed_question():
    """The seed question: (1000, 20, 1), batch_size=200: does Keras reset state after each sequence or
    each batch? The first sentence answers it: every sample starts from zero state."""
    e = sb.explain((1000, 20, 1), batch_size=200, stateful=False)
    assert e.n_batches == 5 and e.parallel_states == 200
    assert e.continues(250) is None
    assert e.lines[0].startswith("stateful=False: every sample starts from zero state; no state passes from one "
                                 "sample to another, inside a batch or across batches")
    assert "5 batches per epoch" in str(e)


def test_explain_edges_read_right():
    e = sb.explain((10, 20, 1), batch_size=2000, stateful=True)
    text = str(e)
    assert "1 batch per epoch" in text and "1 chunk" in text and "first 0" not in text
    assert "sample 2000 continues" not in text and "larger than the 10 samples" in e.problems[0]
    one = str(sb.explain((1, 20, 1), batch_size=1, stateful=True))
    assert "1 sample /" in one and "1 parallel state," in one and "1 batches" not in one


def test_explain_stateful_continuation():
    e = sb.explain(np.zeros((1000, 20, 1)), batch_size=200, stateful=True)
    assert e.n_batches == 5 and e.resets_per_epoch == 0 and e.parallel_states == 200
    assert e.continues(200) == 0 and e.continues(401) == 201 and e.continues(199) is None
    assert e.lines[0].startswith("stateful=True: Keras never resets the state by itself; row i of batch k+1 "
                                 "continues row i of batch k")
    assert not e.problems


def test_explain_shapes_seed_and_remainder_problem():
    e = sb.explain((100, 20, 1), batch_size=10)
    assert e.n_batches == 10 and "10/10" in str(e)
    e = sb.explain((1001, 20, 1), batch_size=200, stateful=True)
    assert e.n_batches == 6 and e.last_batch_size == 1
    assert e.problems and "Incompatible shapes" in e.problems[0]
    v = sb.explain((64, None, 3), batch_size=32)
    assert "variable number" in str(v)


def test_explain_arranged():
    a = sb.arrange_stateful([np.arange(30.0), np.arange(12.0), np.arange(50.0)], 5, 2)
    e = sb.explain(a)
    assert e.stateful and e.batch_size == 2 and e.n_batches == a.n_batches
    assert "padding" in str(e) and "LaneResetCallback" in str(e)


def test_explain_bad_input():
    with pytest.raises(sb.ParameterError, match="Fix:"):
        sb.explain((10, 5))
    with pytest.raises(sb.ParameterError):
        sb.explain((10, 5, 1), batch_size=0)


def test_cli_explain(capsys):
    assert main(["explain", "--shape", "1000,20,1", "--batch-size", "200", "--stateful"]) == 0
    out = capsys.readouterr().out
    assert "5 batches per epoch" in out and "200 parallel states" in out


def test_cli_check_files(tmp_path, capsys):
    good = tmp_path / "good.npz"
    np.savez(good, X=np.random.default_rng(0).normal(size=(8, 5, 2)).astype("float32"), y=np.zeros((8, 1)))
    assert main(["check", str(good), "--batch-size", "4", "--stateful"]) == 0
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 20)))
    assert main(["check", str(bad)]) == 1
    assert "X[..., None]" in capsys.readouterr().out
    csv = tmp_path / "series.csv"
    pd.DataFrame({"t": range(30), "v": np.r_[np.arange(29.0), np.nan]}).to_csv(csv, index=False)
    assert main(["check", str(csv), "--timesteps", "5", "--time-col", "t"]) == 1
    assert "NaN" in capsys.readouterr().out
    pq = tmp_path / "series.parquet"
    pd.DataFrame({"v": np.arange(30.0)}).to_parquet(pq)
    assert main(["check", str(pq), "--timesteps", "5"]) == 0
    assert main(["check", str(tmp_path / "missing.npy")]) == 2


def test_cli_entry_point_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "statebatch", "explain", "--shape", "100,20,1", "--batch-size", "10"],
                         capture_output=True, text=True, check=True).stdout
    assert "10 batches per epoch" in out


def test_import_is_light():
    code = "import sys, statebatch; print(any(m in sys.modules for m in ('tensorflow', 'keras', 'matplotlib', 'sklearn')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
