"""explain reads data (the layout detector), and the CLI checks and explains files and long tables."""
import numpy as np
import pandas as pd

import statebatch as sb
from statebatch.cli import main


def walk(steps, f=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    return np.sin(t / 13.0 + rng.uniform(0, 6, f)) + np.cumsum(rng.normal(0, 0.1, (steps, f)), axis=0)


def test_explain_seed_question_with_data_answers_first():
    """(1000, 20, 1), batch_size=200, stateless: the first sentence answers 'after each sequence or batch?'."""
    X = sb.make_windows(walk(1019).astype("float32"), 20).X
    assert X.shape == (1000, 20, 1)
    e = sb.explain(X, batch_size=200, stateful=False)
    assert e.lines[0].startswith("stateful=False: every sample starts from zero state")
    assert e.layout == "sliding_windows" and not e.problems
    assert "what the data looks like: sliding windows" in str(e)


def test_explain_stateful_sliding_windows_is_a_problem_not_a_lane_story():
    X = sb.make_windows(walk(1019).astype("float32"), 20).X
    e = sb.explain(X, batch_size=200, stateful=True)
    assert e.lines[0].startswith("stateful=True: Keras never resets the state by itself")
    assert e.layout == "sliding_windows"
    assert e.problems and "not lanes" in e.problems[-1] and "arrange_stateful" in e.problems[-1]


def test_explain_lanes_and_shape_only():
    lanes = sb.arrange_stateful(walk(4000), 10, 4, targets=None, tail="drop").X
    e = sb.explain(lanes, batch_size=4, stateful=True)
    assert e.layout == "lanes" and not e.problems and "the layout a stateful model needs" in str(e)
    assert sb.explain((1000, 20, 1), batch_size=200).layout is None  # a shape has no data to read


def test_cli_check_natural_order_chunks_from_the_issue(tmp_path, capsys):
    chunks = tmp_path / "chunks.npz"
    np.savez(chunks, X=walk(64 * 10, 2).reshape(64, 10, 2).astype("float32"))
    # a statistical reading: a warning with the fix, and the layout not stated as a fact (issue 21)
    assert main(["check", str(chunks), "--batch-size", "4", "--stateful"]) == 0
    out = capsys.readouterr().out
    assert "natural order" in out and ".T.ravel()" in out and "statistical" in out
    assert "layout: natural_order_chunks (a statistical reading, not proof)" in out


def test_cli_explain_reads_a_file(tmp_path, capsys):
    chunks = tmp_path / "chunks.npy"
    np.save(chunks, walk(64 * 10, 2).reshape(64, 10, 2).astype("float32"))
    assert main(["explain", str(chunks), "--batch-size", "4", "--stateful"]) == 0
    out = capsys.readouterr().out
    assert "natural order chunks" in out and any(line.strip().startswith("!") and "not lanes" in line
                                                 for line in out.splitlines())
    assert main(["explain", "--shape", "1000,20,1", "--batch-size", "200"]) == 0
    assert capsys.readouterr().out.splitlines()[1].strip().startswith(
        "- stateful=False: every sample starts from zero state")
    assert main(["explain", str(chunks), "--shape", "1,2,3"]) == 2


def long_table(n_series=8, steps=120, seed=0):
    rng = np.random.default_rng(seed)
    parts = [pd.DataFrame({"id": f"s{i}", "t": np.arange(steps), "value": walk(steps, seed=i)[:, 0],
                           "y": walk(steps, seed=100 + i)[:, 0]}) for i in range(n_series)]
    df = pd.concat(parts, ignore_index=True)
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)  # rows out of order on purpose


def test_cli_check_long_table_stateful_builds_lanes_and_says_so(tmp_path, capsys):
    csv = tmp_path / "long.csv"
    long_table().to_csv(csv, index=False)
    rc = main(["check", str(csv), "--id-col", "id", "--time-col", "t", "--target", "y", "--timesteps", "10",
               "--batch-size", "4", "--stateful"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "8 series (by 'id'), ordered by 't'" in out and "features ['value'], target ['y']" in out
    assert "built 8 series -> lanes with statebatch.arrange_stateful(timesteps=10, batch_size=4)" in out
    assert "layout: lanes" in out


def test_cli_long_table_stateless_windows(tmp_path, capsys):
    pq = tmp_path / "long.parquet"
    long_table().to_parquet(pq)
    assert main(["check", str(pq), "--id-col", "id", "--time-col", "t", "--timesteps", "10", "--stride", "5"]) == 0
    out = capsys.readouterr().out
    # 8 series x (120 - 10) // 5 + 1 = 23 windows (the next-step target leaves out the last one: 22)
    assert "from 8 series with statebatch.make_windows" in out and "never cross a series boundary" in out
    assert main(["explain", str(pq), "--id-col", "id", "--time-col", "t", "--timesteps", "10",
                 "--batch-size", "4", "--stateful"]) == 0
    out = capsys.readouterr().out
    assert "built 8 series -> lanes" in out and "lanes" in out


def test_cli_table_without_id_col_is_refused_clearly(tmp_path, capsys):
    csv = tmp_path / "long.csv"
    long_table().to_csv(csv, index=False)
    assert main(["check", str(csv), "--timesteps", "10", "--batch-size", "4", "--stateful"]) == 2
    err = capsys.readouterr().err
    assert "looks like a series id" in err and "--id-col id" in err
    assert main(["check", str(csv), "--id-col", "id", "--timesteps", "10"]) == 2
    assert "--time-col t" in capsys.readouterr().err
    assert main(["check", str(csv), "--id-col", "nope", "--timesteps", "10"]) == 2
    assert "not a column" in capsys.readouterr().err


def test_cli_one_series_table_explicitly(tmp_path, capsys):
    csv = tmp_path / "one.csv"
    pd.DataFrame({"t": np.arange(200), "value": walk(200)[:, 0]}).to_csv(csv, index=False)
    assert main(["check", str(csv), "--time-col", "t", "--timesteps", "10", "--batch-size", "4", "--stateful"]) == 0
    out = capsys.readouterr().out
    assert "1 series, ordered by 't'" in out and "built 1 series -> lanes" in out


def test_cli_stateful_table_needs_batch_size(tmp_path, capsys):
    csv = tmp_path / "one.csv"
    pd.DataFrame({"value": walk(200)[:, 0]}).to_csv(csv, index=False)
    assert main(["check", str(csv), "--timesteps", "10", "--stateful"]) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_cli_table_id_by_suffix_and_stride_with_stateful(tmp_path, capsys):
    csv = tmp_path / "nixtla.csv"
    df = long_table().rename(columns={"id": "unique_id", "t": "ds"})
    df.to_csv(csv, index=False)
    assert main(["check", str(csv), "--timesteps", "10"]) == 2
    assert "--id-col unique_id" in capsys.readouterr().err
    assert main(["check", str(csv), "--id-col", "unique_id", "--timesteps", "10"]) == 2
    assert "--time-col ds" in capsys.readouterr().err
    assert main(["check", str(csv), "--id-col", "unique_id", "--time-col", "ds", "--timesteps", "10",
                 "--batch-size", "4", "--stateful", "--stride", "3"]) == 2
    assert "--stride 3 with --stateful" in capsys.readouterr().err


def test_cli_table_with_duplicate_time_stamps_is_refused(tmp_path, capsys):
    csv = tmp_path / "dup.csv"
    df = long_table()
    df.loc[df.index[:5], "t"] = 0
    df.to_csv(csv, index=False)
    assert main(["check", str(csv), "--id-col", "id", "--time-col", "t", "--timesteps", "10"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Fix:" in err and "please report" not in err
