"""Census, core leftovers (issue 21): negative, zero and huge sizes, ragged inputs, wrong axes and
mismatched lengths at every core entry point. Each bad input gets a statebatch error that is a
ValueError/TypeError, names the problem and says the fix; nothing foreign (numpy's messages,
IndexError, MemoryError) escapes.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
import statebatch._args as args_module
from statebatch.errors import (BatchSizeError, DTypeError, LengthMismatchError, ParameterError, ShapeError,
                               StatebatchError, StatebatchWarning)
from statebatch.plans.buckets import plan_buckets
from statebatch.plans.lanes import plan_lanes

x = np.arange(100.0)
seq = np.ones((5, 2))


def _arranged():
    return sb.arrange_stateful(np.arange(200.0), 5, 4)  # 10 batches x 4 lanes x 5 steps


def _bucketing():
    return sb.bucket_batches([np.ones((n, 1)) for n in (3, 4, 5, 6)], 2, shuffle=False)


def _frame_with_dates(as_text):
    dates = pd.date_range("2000-01-01", periods=10, freq="MS")
    return pd.DataFrame({"id": np.repeat(["a", "b"], 10), "date": list(dates.strftime("%Y-%m-%d") if as_text
                                                                        else dates) * 2, "v": np.arange(20.0)})


# (name, call, statebatch error, words the message must hold: the problem, then the fix)
CASES = [
    # strided_windows: negative, zero, too long, ragged, scalar
    ("strided length -2", lambda: sb.strided_windows(x, -2), ParameterError, ["length must be >= 1", "length=1"]),
    ("strided length 0", lambda: sb.strided_windows(x, 0), ParameterError, ["length must be >= 1"]),
    ("strided step 0", lambda: sb.strided_windows(x, 5, 0), ParameterError, ["step must be >= 1", "step=1"]),
    ("strided step -1", lambda: sb.strided_windows(x, 5, -1), ParameterError, ["step must be >= 1"]),
    ("strided longer than data", lambda: sb.strided_windows(x, 10**9), ShapeError, ["no window", "length <= 100"]),
    ("strided span too long", lambda: sb.strided_windows(x, 30, 4), ShapeError, ["spans 117 rows", "length <= 25"]),
    ("strided float length", lambda: sb.strided_windows(x, 2.0), ParameterError, ["must be an integer"]),
    ("strided ragged", lambda: sb.strided_windows([[1, 2], [3]], 1), DTypeError, ["ragged list", "make_windows"]),
    ("strided scalar", lambda: sb.strided_windows(np.float64(3.0), 1), ShapeError, ["scalar", "array (rows"]),
    # explain: zero sizes, models
    ("explain 0 timesteps", lambda: sb.explain((100, 0, 1)), ParameterError, ["0 timesteps", "sizes >= 1"]),
    ("explain 0 features", lambda: sb.explain((100, 5, 0)), ParameterError, ["0 features"]),
    ("explain 0 samples", lambda: sb.explain((0, 5, 1)), ParameterError, ["0 samples"]),
    ("explain array 0 timesteps", lambda: sb.explain(np.zeros((4, 0, 1))), ShapeError, ["0 timesteps"]),
    ("explain negative", lambda: sb.explain((100, -1, 1)), ParameterError, ["negative"]),
    # make_windows: targets of another length
    ("windows targets one short", lambda: sb.make_windows(x, 10, targets=x[:-1]), LengthMismatchError,
     ["99 rows but the series has 100 steps", "targets='next'"]),
    ("windows targets one long", lambda: sb.make_windows(x, 10, targets=np.r_[x, 0.0]), LengthMismatchError,
     ["101 rows", "targets[:100]"]),
    ("windows seq targets short", lambda: sb.make_windows(x, 10, targets=x[:-3], return_sequences=True),
     LengthMismatchError, ["97 rows"]),
    ("windows many series targets short", lambda: sb.make_windows([x, x[:50]], 10, targets=[x, x[:49]]),
     LengthMismatchError, ["targets[1] has 49 rows"]),
    ("windows copy beyond memory", lambda: sb.make_windows(np.zeros(10**6, np.float32), 10**5, copy=True).X,
     ParameterError, ["GiB", "copy=False"]),
    # arrange_stateful / plan_lanes / pack_lanes: sizes beyond memory are refused before allocating
    ("arrange X beyond memory", lambda: sb.arrange_stateful(x, 10**9, 2).X, ParameterError,
     ["the epoch's X would need", "GiB", "batches one by one"]),
    ("arrange lanes beyond memory", lambda: sb.arrange_stateful(x, 5, 10**9), ParameterError,
     ["the lane plan would need", "smaller batch_size"]),
    ("plan_lanes beyond memory", lambda: plan_lanes([10**12], 5, 4), ParameterError, ["lane plan", "GiB"]),
    ("pack_lanes beyond memory", lambda: sb.pack_lanes([1] * 10, 10**8), ParameterError,
     ["pack_lanes' lanes", "GiB", "number of series (10)"]),
    # unbatch: a wrong time axis, ragged outputs
    ("lanes unbatch T+1", lambda: _arranged().unbatch(np.zeros((40, 6, 1))), ShapeError,
     ["6 steps per row but the batch has 5 timesteps", "model.predict on exactly these batches"]),
    ("lanes unbatch T-1 per batch", lambda: _arranged().unbatch([np.zeros((4, 4, 1))] * 10), ShapeError,
     ["4 steps per row"]),
    ("lanes unbatch ragged", lambda: _arranged().unbatch([[1, 2], [3]]), ShapeError, ["ragged list", "one array"]),
    ("windows unbatch ragged", lambda: sb.make_windows(x, 10).unbatch([[1, 2], [3]]), ParameterError,
     ["ragged list", "one array per batch"]),
    ("windows unbatch T+1", lambda: sb.make_windows(x, 10).unbatch(np.zeros((91, 11, 1))), ShapeError,
     ["11 steps per window", "return_sequences"]),
    ("buckets unbatch T+1", lambda: _bucketing().unbatch([np.zeros((2, int(p) + 1, 1))
                                                           for p in _bucketing().plan().padded_lengths]),
     ShapeError, ["steps per row but the batch is padded to"]),
    # plot_buckets: sequences instead of lengths, bad boundaries
    ("plot_buckets sequences", lambda: sb.plot_buckets([seq, seq]), ParameterError,
     ["2 sequences", "[len(s) for s in sequences]"]),
    ("plot_buckets ragged sequences", lambda: sb.plot_buckets([np.ones(5), np.ones(7)]), ParameterError,
     ["sequences"]),
    ("plot_buckets unsorted boundaries", lambda: sb.plot_buckets([3, 5, 9], [5, 2]), ParameterError,
     ["increasing", "boundaries=[10, 20, 40]"]),
    # bucket boundaries
    ("bucket boundaries ragged", lambda: sb.bucket_batches([np.ones((n, 1)) for n in (1, 2, 3, 4)], 2,
                                                           mode="buckets", boundaries=[[1], [2, 3]]),
     ParameterError, ["1-D list of positive integer lengths"]),
    ("bucket boundaries text", lambda: sb.bucket_batches([np.ones((n, 1)) for n in (1, 2, 3, 4)], 2,
                                                         mode="buckets", boundaries=["a"]),
     ParameterError, ["positive integer"]),
    ("bucket boundaries float", lambda: plan_buckets([1, 2, 3], 2, mode="buckets", boundaries=[2.5], shuffle=False),
     ParameterError, ["positive integer"]),
    ("bucket boundaries zero", lambda: plan_buckets([1, 2, 3], 2, mode="buckets", boundaries=[0, 2], shuffle=False),
     ParameterError, ["positive integer"]),
    # a long frame's unnamed time column: name time_col, not feature_cols
    ("frame datetime column without time_col", lambda: sb.make_windows(_frame_with_dates(False), 3, id_col="id"),
     DTypeError, ["'date'", "time_col='date'"]),
    ("frame date text without time_col", lambda: sb.arrange_stateful(_frame_with_dates(True), 3, 2, id_col="id"),
     DTypeError, ["time stamps", "time_col='date'", "pd.to_datetime"]),
    # a stateful batch size and a row count that is not a multiple of it: inference_model is the fix
    ("validate 1 row stateful", lambda: sb.validate(np.zeros((1, 10, 1), np.float32), batch_size=4, stateful=True,
                                                    shuffle=False), BatchSizeError,
     ["1 sample do not divide", "statebatch.inference_model(model, 1)"]),
    ("validate 10 rows stateful", lambda: sb.validate(np.zeros((10, 10, 1), np.float32), batch_size=4,
                                                      stateful=True, shuffle=False), BatchSizeError,
     ["the last batch would hold 2", "inference_model(model, 10)", "X[:8]"]),
]


@pytest.fixture
def one_gib(monkeypatch):
    """1 GiB of memory available, on any machine: the huge cases are refused the same way everywhere."""
    monkeypatch.setattr(args_module, "available_memory", lambda: 2**30)


@pytest.mark.parametrize("name, call, error, words", CASES, ids=[c[0] for c in CASES])
def test_census_core(name, call, error, words, one_gib):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatebatchWarning)
        with pytest.raises(error) as info:
            call()
    exc = info.value
    assert isinstance(exc, StatebatchError) and isinstance(exc, (ValueError, TypeError))
    text = str(exc)
    assert "Fix:" in text and exc.fix
    for w in words:
        assert w in text, (w, text)
    for foreign in ("inhomogeneous", "negative dimensions are not allowed", "index -1 is out of bounds", "Unable to allocate"):
        assert foreign not in text


def test_census_core_size():
    assert len(CASES) >= 35


def test_allocation_that_fails_anyway_is_a_statebatch_error(monkeypatch):
    """The size check cannot foresee every MemoryError (overcommit, fragmentation): one that happens anyway is
    still a statebatch error with the size and the fix, never a bare MemoryError."""
    def no_memory(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(args_module, "available_memory", lambda: 2**50)
    monkeypatch.setattr(args_module.np, "empty", no_memory)
    with pytest.raises(ParameterError, match="could not be allocated") as info:
        args_module.allocate("the padded batch", (1000, 1000, 100), np.float64)
    assert "0.7 GiB" in str(info.value) and "Fix:" in str(info.value)


def test_sizes_within_memory_are_not_refused(one_gib):
    a = sb.arrange_stateful(np.arange(2000.0), 50, 4)
    assert a.X.shape == (40, 50, 1)
    assert len(sb.pack_lanes([3, 1, 2], 10**6)) == 10**6  # 64 MB of empty lanes: fine
    assert sb.strided_windows(x, 100).shape == (1, 100)


def test_pack_lanes_many_lanes_equals_few_lanes_plus_empty_ones():
    """The heap holds only as many lanes as there are series: the packing is the same as with the full heap."""
    chunks = [5, 3, 3, 8, 1, 0, 2]
    wide = sb.pack_lanes(chunks, 1000)
    assert wide[:7] == sb.pack_lanes(chunks, 7) and all(lane == [] for lane in wide[7:])
    assert sorted(s for lane in wide for s in lane) == [0, 1, 2, 3, 4, 6]


# --------------------------------------------------------------------------- padding: warned, with the fix
def test_arrangement_that_is_mostly_padding_warns_with_the_fix():
    with pytest.warns(StatebatchWarning) as rec:
        a = sb.arrange_stateful(np.arange(20.0), 5, 64)
    text = " ".join(str(r.message) for r in rec)
    assert a.padding_fraction > 0.9
    assert "94.06%" in text and "60 lanes of 64 never hold data" in text and "batch_size=4 or less" in text
    with pytest.warns(StatebatchWarning, match="shorter timesteps"):  # 80% padding, no idle lane
        sb.arrange_stateful(np.arange(40.0), 200, 1)
    with pytest.warns(StatebatchWarning, match="1 lane of 5 never holds data"):
        sb.arrange_stateful([np.arange(30.0)] * 4, 10, 5)  # 4 series, 5 lanes: one idle throughout


def test_ordinary_arrangement_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatebatchWarning)
        sb.arrange_stateful(np.arange(200.0), 5, 4)
        sb.arrange_stateful([np.arange(30.0), np.arange(12.0), np.arange(50.0)], 5, 2)
        sb.arrange_stateful(np.arange(40.0), 100, 1)  # 61% padding: one long chunk, below the threshold
        # series of different lengths, one per lane: about half padding, legitimately
        sb.arrange_stateful([np.arange(float(n)) for n in (50, 300, 120, 80)], 25, 4)


# --------------------------------------------------------------------------- equal lengths and pad_to="bucket"
def test_bucket_mode_with_equal_lengths_pads_to_the_batch():
    bk = sb.bucket_batches([np.ones((3, 1))] * 4, 2, mode="buckets", pad_to="bucket", shuffle=False)
    assert bk.n_batches == 2 and bk.padding_fraction == 0.0
    assert [b[0].shape for b in bk.batches()] == [(2, 3, 1), (2, 3, 1)]


# --------------------------------------------------------------------------- left_out locates every step
@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 80), T=st.integers(1, 10), stride=st.integers(1, 25), start=st.integers(0, 5),
       target=st.booleans())
def test_left_out_locates_every_step(n, T, stride, start, target):
    """Every step of the series is in a window (or its target) or in exactly one left_out entry, located
    by first_step and steps; entries never overlap windows or each other."""
    try:
        w = sb.make_windows(np.arange(float(n)), T, stride=stride, start_index=start,
                            targets="next" if target else None)
    except sb.DataValueError:
        return  # no window fits: refused (tested elsewhere)
    used = np.zeros(n, dtype=int)
    extra = 1 if target else 0
    for s in np.asarray(w.start):
        used[s: s + T + extra] = 1
    left = np.zeros(n, dtype=int)
    for lo in w.left_out:
        assert lo.steps > 0
        left[lo.first_step: lo.first_step + lo.steps] += 1
    assert (left <= 1).all() and not (left & used).any()
    np.testing.assert_array_equal(left + used, np.ones(n, dtype=int))


def test_stride_gap_entries_are_one_per_gap():
    lo = sb.make_windows(x, 10, stride=15).left_out
    assert [(e.first_step, e.steps) for e in lo] == [(10, 5), (25, 5), (40, 5), (55, 5), (70, 5), (85, 5)]


# --------------------------------------------------------------------------- models: explain and inference_model
def _stateful_model():
    import keras

    inp = keras.Input(batch_shape=(4, 10, 1))
    lstm = keras.layers.LSTM(3, stateful=True, name="census_lstm")
    return keras.Model(inp, keras.layers.Dense(1)(lstm(inp))), inp


def test_explain_a_keras_model_and_its_input():
    import keras

    model, inp = _stateful_model()
    e = sb.explain(model)
    text = str(e)
    assert e.stateful and e.batch_size == 4 and e.parallel_states == 4
    assert "stateful layers ['census_lstm']" in text and "batch_shape (4, 10, 1)" in text
    assert "statebatch.inference_model(model, n)" in text and "multiple of 4" in text
    assert not e.problems
    one = sb.explain(model, batch_size=1)
    assert one.problems and "statebatch.inference_model(model, 1)" in one.problems[0]
    assert sb.explain(inp, stateful=True).batch_size == 4
    free = sb.explain(keras.Sequential([keras.Input((10, 2)), keras.layers.GRU(2)]), batch_size=16)
    assert not free.stateful and free.batch_size == 16 and "any batch_size" in str(free)
    with pytest.raises(ParameterError, match="no input shape yet") as info:
        sb.explain(keras.Sequential([keras.layers.LSTM(2)]))
    assert "keras.Input(batch_shape" in info.value.fix


def test_validate_one_row_on_a_stateful_model_names_inference_model():
    """Keras' own predict on one row fails with 'Expected batch size: 4'; validate says what to do."""
    model, _ = _stateful_model()
    with pytest.raises(BatchSizeError) as info:
        sb.validate(np.zeros((1, 10, 1), np.float32), model=model, shuffle=False)
    assert "statebatch.inference_model(model, 1)" in str(info.value)
    assert "Expected batch size: 4" in str(info.value)


# --------------------------------------------------------------------------- the same classes through the CLI
def _table(tmp_path):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"id": np.repeat(["a", "b"], 30), "t": np.tile(np.arange(30), 2),
                  "v": np.arange(60.0)}).to_csv(csv, index=False)
    return str(csv)


CLI_CASES = [
    (lambda p: ["explain", "--shape", "100,0,1"], "0 timesteps"),
    (lambda p: ["explain", "--shape", "0,5,1"], "0 samples"),
    (lambda p: ["check", _table(p), "--id-col", "id", "--time-col", "t", "--timesteps", "500"], "no window fits"),
    (lambda p: ["check", _table(p), "--id-col", "id", "--time-col", "t", "--timesteps", "5", "--batch-size",
                str(10**9), "--stateful"], "GiB"),
    (lambda p: ["check", _table(p), "--id-col", "id", "--time-col", "t", "--timesteps", "5", "--time-format",
                "%Y-%m-%d"], "--time-format '%Y-%m-%d' does not read"),
]


@pytest.mark.parametrize("argv, needle", CLI_CASES, ids=[c[1] for c in CLI_CASES])
def test_census_core_cli(tmp_path, capsys, one_gib, argv, needle):
    from statebatch.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatebatchWarning)
        assert main(argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert needle in err and "Fix:" in err and "please report" not in err
