"""A corpus of bad inputs: each must raise the right statebatch error with a message that names the fix."""
import warnings

import keras
import numpy as np
import pandas as pd
import pytest

import statebatch as sb
from statebatch.errors import (BatchSizeError, DataValueError, DTypeError, LengthMismatchError, ModelMismatchError,
                               OverlappingWindowsError, ParameterError, ShapeError, ShuffleError, StatebatchError,
                               StatefulLayoutError)

rng = np.random.default_rng(0)
GOOD = rng.normal(size=(40, 5, 2)).astype("float32")
Y = rng.normal(size=(40, 1)).astype("float32")


def sliding(n=200, T=10, f=1):
    series = np.sin(np.arange(n + T) * 0.37)[:, None].repeat(f, axis=1) + np.arange(n + T)[:, None] * 0.01
    return sb.make_windows(series.astype("float32"), T).X[:n]


@pytest.fixture(scope="module")
def models():
    def rnn(stateful=False, batch=None, T=5, F=2, seq=False, units_out=1):
        shape = dict(batch_shape=(batch, T, F)) if batch else dict(shape=(T, F))
        inp = keras.Input(**shape)
        h = keras.layers.LSTM(3, stateful=stateful, return_sequences=seq)(inp)
        return keras.Model(inp, keras.layers.Dense(units_out)(h))
    return {
        "plain": rnn(),
        "seq": rnn(seq=True),
        "stateful4": rnn(stateful=True, batch=4),
        "stateful8": rnn(stateful=True, batch=8),
        "two_out": rnn(units_out=2),
        "stateful4_T10_F1": rnn(stateful=True, batch=4, T=10, F=1),
    }


# (id, kwargs builder, expected class, words the fix must contain)
CASES = [
    ("1d", lambda m: dict(X=np.zeros(100)), ShapeError, "make_windows"),
    ("2d", lambda m: dict(X=np.zeros((100, 20))), ShapeError, "X[..., None]"),
    ("4d", lambda m: dict(X=np.zeros((10, 5, 4, 4))), ShapeError, "reshape(10, 5, 16)"),
    ("5d", lambda m: dict(X=np.zeros((2, 2, 2, 2, 2))), ShapeError, "reshape"),
    ("dataframe", lambda m: dict(X=pd.DataFrame({"a": [1.0, 2.0]})), ShapeError, "make_windows"),
    ("object", lambda m: dict(X=np.array([np.zeros((3, 1)), np.zeros((4, 1))], dtype=object)), DTypeError, "pad"),
    ("ragged_list", lambda m: dict(X=[[[1.0]], [[1.0], [2.0]]]), DTypeError, "pad"),
    ("strings", lambda m: dict(X=np.array([[["a"]]])), DTypeError, "encode"),
    ("empty", lambda m: dict(X=np.zeros((0, 5, 2))), DataValueError, "at least one sample"),
    ("zero_features", lambda m: dict(X=np.zeros((3, 5, 0))), DataValueError, "at least"),
    ("nan", lambda m: dict(X=np.where(GOOD > 2, np.nan, GOOD)), DataValueError, "interpolate"),
    ("inf", lambda m: dict(X=np.where(GOOD > 2, np.inf, GOOD)), DataValueError, "isfinite"),
    ("y_len", lambda m: dict(X=GOOD, y=Y[:30]), LengthMismatchError, "one target per sample"),
    ("y_nan", lambda m: dict(X=GOOD, y=np.full((40, 1), np.nan)), DataValueError, "interpolate"),
    ("y_object", lambda m: dict(X=GOOD, y=np.array([None] * 40)), DTypeError, "numeric"),
    ("w_len", lambda m: dict(X=GOOD, y=Y, sample_weight=np.ones(39)), LengthMismatchError, "one weight"),
    ("w_negative", lambda m: dict(X=GOOD, y=Y, sample_weight=-np.ones(40)), DataValueError, ">= 0"),
    ("w_shape", lambda m: dict(X=GOOD, y=Y, sample_weight=np.ones((40, 7))), ShapeError, "per sample and timestep"),
    ("timesteps_arg", lambda m: dict(X=GOOD, timesteps=7), ModelMismatchError, "timesteps=7"),
    ("features_arg", lambda m: dict(X=GOOD, features=3), ModelMismatchError, "X[..., cols]"),
    ("model_timesteps", lambda m: dict(X=rng.normal(size=(8, 9, 2)), model=m["plain"]), ModelMismatchError,
     "timesteps=5"),
    ("model_features", lambda m: dict(X=rng.normal(size=(8, 5, 3)), model=m["plain"]), ModelMismatchError,
     "feature columns"),
    ("model_rank", lambda m: dict(X=rng.normal(size=(8, 5)), model=m["plain"]), ShapeError, "X[..., None]"),
    ("y_per_step_for_last_output", lambda m: dict(X=GOOD, y=np.zeros((40, 5, 1)), model=m["plain"]),
     ModelMismatchError, "return_sequences=True"),
    ("y_per_sample_for_seq_output", lambda m: dict(X=GOOD, y=np.zeros((40, 1)), model=m["seq"]),
     ModelMismatchError, "return_sequences=False"),
    ("y_width", lambda m: dict(X=GOOD, y=np.zeros((40, 3)), model=m["two_out"]), ModelMismatchError, "Dense(3)"),
    ("batch_size_zero", lambda m: dict(X=GOOD, batch_size=0), ParameterError, "positive integer"),
    ("stateful_no_batch", lambda m: dict(X=GOOD, stateful=True, shuffle=False), BatchSizeError, "batch_shape"),
    ("stateful_remainder", lambda m: dict(X=GOOD[:38], stateful=True, batch_size=4, shuffle=False), BatchSizeError,
     "arrange_stateful"),
    ("stateful_shuffle", lambda m: dict(X=GOOD, stateful=True, batch_size=4, shuffle=True), ShuffleError,
     "shuffle=False"),
    ("stateful_shuffle_batch", lambda m: dict(X=GOOD, stateful=True, batch_size=4, shuffle="batch"), ShuffleError,
     "shuffle=False"),
    ("model_batch_mismatch", lambda m: dict(X=GOOD, batch_size=8, model=m["stateful4"], shuffle=False),
     BatchSizeError, "batch_size=4"),
    ("model_batch_remainder", lambda m: dict(X=GOOD[:30], model=m["stateful4"], shuffle=False), BatchSizeError,
     "Incompatible shapes"),
    ("overlapping_windows", lambda m: dict(X=sliding(), stateful=True, batch_size=4, shuffle=False),
     OverlappingWindowsError, "arrange_stateful"),
    ("overlapping_windows_model", lambda m: dict(X=sliding(T=10), model=m["stateful4_T10_F1"], shuffle=False),
     OverlappingWindowsError, "non-overlapping lanes"),
    ("stateful_flag_without_stateful_model", lambda m: dict(X=GOOD, model=m["plain"], stateful=True),
     StatefulLayoutError, "stateful=True"),
    ("stateless_flag_with_stateful_model", lambda m: dict(X=GOOD, model=m["stateful4"], stateful=False),
     StatefulLayoutError, "stateful=True"),
    ("replicas", lambda m: dict(X=GOOD, batch_size=10, num_replicas=4), BatchSizeError, "divisible by 4"),
]


@pytest.mark.parametrize("name, build, exc, fix", CASES, ids=[c[0] for c in CASES])
def test_bad_input_corpus(models, name, build, exc, fix):
    kwargs = build(models)
    X = kwargs.pop("X")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc) as info:
            sb.validate(X, **kwargs)
    err = info.value
    assert isinstance(err, StatebatchError)
    assert isinstance(err, (ValueError, TypeError))
    msg = str(err)
    assert "Fix:" in msg, msg
    assert fix in msg, msg


def test_corpus_is_large_and_distinct():
    assert len({c[0] for c in CASES}) == len(CASES) >= 30


def test_good_input_passes_with_report(models):
    rep = sb.validate(GOOD, Y, model=models["plain"], batch_size=8, emit_warnings=False)
    assert rep.ok and rep.info["n_samples"] == 40 and rep.info["timesteps"] == 5
    arranged = sb.arrange_stateful(rng.normal(size=(400, 2)).astype("float32"), 5, 4, target_features=[0],
                                  return_sequences=False)
    rep = sb.validate(arranged, model=models["stateful4"], shuffle=False, emit_warnings=False)
    assert rep.ok, str(rep)


def test_warnings_are_collected_not_raised():
    X = (rng.normal(size=(10, 1, 2)) * 1e4)
    with pytest.warns(sb.StatebatchWarning):
        rep = sb.validate(X)
    text = " ".join(rep.warnings)
    assert "single timestep" in text and "float64" in text and "StandardScaler" in text
    assert rep.ok


def test_report_collects_all_errors_without_raising():
    X = np.where(GOOD > 2, np.nan, GOOD)
    rep = sb.validate(X, Y[:3], stateful=True, batch_size=7, shuffle=True, raise_errors=False, emit_warnings=False)
    kinds = {type(e) for e in rep.errors}
    assert {DataValueError, LengthMismatchError, BatchSizeError, ShuffleError} <= kinds
    assert "error(s)" in str(rep)


def test_continuous_lanes_are_not_flagged_as_overlap():
    series = np.sin(np.arange(4000) * 0.37)[:, None].astype("float32")
    arranged = sb.arrange_stateful(series, 10, 4, targets=None)
    assert sb.validate(arranged.X, stateful=True, batch_size=4, shuffle=False, emit_warnings=False).ok


def test_masking_model_warns_about_rows_cudnn_rejects():
    inp = keras.Input(batch_shape=(2, 4, 1))
    h = keras.layers.Masking(mask_value=0.0)(inp)
    model = keras.Model(inp, keras.layers.LSTM(2, stateful=True, return_sequences=True)(h))
    arranged = sb.arrange_stateful([np.arange(1.0, 14.0), np.arange(1.0, 5.0)], 4, 2, targets=None)
    assert (arranged.plan().valid == 0).any()  # an idle lane: a fully padded row
    rep = sb.validate(arranged.X, model=model, shuffle=False, raise_errors=False, emit_warnings=False)
    assert any("cuDNN" in w and "fully masked" in w for w in rep.warnings), rep.warnings
    left = np.ones((2, 4, 1))
    left[0, :2] = 0
    rep = sb.validate(left, model=model, shuffle=False, raise_errors=False, emit_warnings=False)
    assert any("1 have masked steps before real ones" in w for w in rep.warnings), rep.warnings


_SERIES = np.cumsum(np.random.default_rng(7).normal(size=20_000)).astype("float32")


@pytest.mark.parametrize("B", [2, 4, 8, 16, 64])
@pytest.mark.parametrize("T", [3, 10, 50])
def test_sliding_windows_caught_for_any_batch_size_and_lanes_never_flagged(B, T):
    for stride in sorted({1, 2, T - 1} - {0}):
        if stride >= T:
            continue
        X = sb.make_windows(_SERIES, T, stride=stride).X
        X = X[: len(X) // B * B]
        with pytest.raises(OverlappingWindowsError, match="sliding windows|overlapping"):
            sb.validate(X, batch_size=B, stateful=True, shuffle=False)
    lanes = sb.arrange_stateful(_SERIES, T, B, targets=None, tail="drop")
    assert sb.validate(lanes.X, batch_size=B, stateful=True, shuffle=False).ok
    independent = np.random.default_rng(B * T).normal(size=(B * 8, T, 2)).astype("float32")
    assert sb.validate(independent, batch_size=B, stateful=True, shuffle=False).ok
