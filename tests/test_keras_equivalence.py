"""make_windows equals keras.utils.timeseries_dataset_from_array for the parameters both have."""
import keras  # a dev dependency, installed by `make test`
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb


def keras_windows(data, targets, **kw):
    ds = keras.utils.timeseries_dataset_from_array(data, targets, batch_size=10_000, **kw)
    xs, ys = [], []
    for batch in ds:
        if targets is None:
            xs.append(np.asarray(batch))
        else:
            xs.append(np.asarray(batch[0]))
            ys.append(np.asarray(batch[1]))
    X = np.concatenate(xs) if xs else None
    return X, (np.concatenate(ys) if ys else None)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 60), nf=st.integers(1, 3), T=st.integers(1, 8), stride=st.integers(1, 5),
       sr=st.integers(1, 3), start=st.one_of(st.none(), st.integers(1, 6)),
       end_cut=st.one_of(st.none(), st.integers(1, 6)), with_targets=st.booleans(),
       target_2d=st.booleans())
def test_equals_keras(n, nf, T, stride, sr, start, end_cut, with_targets, target_2d):
    rng = np.random.default_rng(n * 7 + T)
    data = rng.normal(size=(n, nf)).astype("float32")
    targets = None
    if with_targets:
        targets = rng.normal(size=(n, 2) if target_2d else (n,)).astype("float32")
    end = None if end_cut is None else n - end_cut
    if (end is not None and start is not None and end <= start) or stride >= n or sr >= n:
        return  # Keras rejects these; statebatch's own errors are tested elsewhere
    kw = dict(sequence_length=T, sequence_stride=stride, sampling_rate=sr, start_index=start, end_index=end)
    kX, ky = keras_windows(data, targets, **kw)
    if kX is None or len(kX) == 0:
        with pytest.raises(sb.DataValueError):
            sb.make_windows(data, T, stride=stride, sampling_rate=sr, start_index=start, end_index=end,
                            targets=targets)
        return
    w = sb.make_windows(data, T, stride=stride, sampling_rate=sr, start_index=start, end_index=end,
                        targets=targets)
    np.testing.assert_array_equal(w.X, kX)
    if targets is not None:
        np.testing.assert_array_equal(w.y, ky)


def test_next_step_recipe_matches_keras_shifted_targets():
    """Keras' next-step recipe (data[:-T], targets=data[T:]) gives the first windows of targets='next';
    statebatch also keeps the last T-1 windows that the recipe loses."""
    data = np.arange(50, dtype="float32")[:, None]
    T = 6
    kX, ky = keras_windows(data[:-T], data[T:], sequence_length=T)
    X, y = sb.make_windows(data, T, targets="next").arrays()
    assert len(kX) == 50 - 2 * T + 1 and len(X) == 50 - T
    np.testing.assert_array_equal(X[: len(kX)], kX)
    np.testing.assert_array_equal(y[: len(ky)], ky)
    np.testing.assert_array_equal(y[:, 0], data[T:, 0])  # every window's target is the next value
