"""validate / check_layout report what the layout detector sees: a stateful layout mistake shown by exact
evidence (shared steps, statebatch's own record) is an error, one read statistically from the values is a
warning that says how sure it is (issue 21); correct lanes and independent samples pass without a warning."""
import warnings

import numpy as np
import pytest

import statebatch as sb
from statebatch.checking import checks
from statebatch.errors import OverlappingWindowsError, ShapeError, StatefulLayoutError


def walk(steps, f=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    return (np.sin(t / 17.0 + rng.uniform(0, 6, f)) + np.cumsum(rng.normal(0, 0.1, (steps, f)), axis=0)).astype("float32")


def lanes(n_batches=64, b=4, t=10, f=2):
    s = walk(n_batches * b * t, f)
    return s.reshape(b, n_batches, t, f).transpose(1, 0, 2, 3).reshape(-1, t, f)


def run(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # correct data must not warn
        return sb.validate(X, stateful=True, shuffle=False, **kw)


def test_lanes_pass_and_report_the_layout():
    rep = run(lanes(), batch_size=4)
    assert rep.ok and rep.info["layout"] == "lanes" and rep.layout.kind == "lanes" and not rep.warnings


def test_independent_samples_pass_without_warning():
    X = np.random.default_rng(0).normal(size=(256, 10, 2)).astype("float32")
    rep = run(X, batch_size=8)
    assert rep.ok and rep.info["layout"] in ("independent", "undetermined") and not rep.warnings


def test_natural_order_chunks_warned_with_the_lane_order():
    # statistical evidence (continuity at row ends): a warning with the fix, never an error (issue 21)
    X = walk(256 * 10).reshape(256, 10, 2)
    rep = sb.validate(X, batch_size=4, stateful=True, shuffle=False, emit_warnings=False)
    assert rep.ok and rep.layout.kind == "natural_order_chunks" and not rep.layout.exact
    msg = " ".join(rep.warnings)
    assert "natural order" in msg and "statistical" in msg and "confidence" in msg
    assert "reshape(4, 64).T.ravel()" in msg and "arrange_stateful" in msg
    with pytest.warns(sb.StatebatchWarning, match="natural order"):
        sb.validate(X, batch_size=4, stateful=True, shuffle=False)
    order = rep.layout.order
    assert sb.validate(X[order], batch_size=4, stateful=True, shuffle=False, emit_warnings=False).warnings == []


def test_natural_order_chunks_made_by_statebatch_refused():
    # exact evidence: statebatch's own record of make_windows(stride=timesteps)
    X = sb.make_windows(walk(256 * 10), 10, stride=10).X
    with pytest.raises(StatefulLayoutError, match="natural order") as info:
        sb.validate(X, batch_size=4, stateful=True, shuffle=False, emit_warnings=False)
    assert "make_windows" in str(info.value) and "T.ravel()" in str(info.value)


@pytest.mark.parametrize("b, t", [(8, 3), (16, 10), (64, 50)])
def test_sliding_windows_refused_when_batch_size_at_least_timesteps(b, t):
    X = sb.make_windows(walk(b * 20 + t), t).X
    X = X[: len(X) // b * b]
    with pytest.raises(OverlappingWindowsError, match="sliding windows"):
        sb.validate(X, batch_size=b, stateful=True, shuffle=False, emit_warnings=False)
    # the same windows as a plain copy: exact evidence from the shared steps alone
    with pytest.raises(OverlappingWindowsError, match="sliding windows"):
        sb.validate(np.array(X) + 0.0, batch_size=b, stateful=True, shuffle=False, emit_warnings=False)


def test_sliding_windows_with_gaps_warned():
    X = np.array(sb.make_windows(walk(40_000), 10, stride=20).X[:512]) + 0.0   # no shared steps: statistical
    rep = sb.validate(X, batch_size=8, stateful=True, shuffle=False, emit_warnings=False)
    assert rep.ok and any("gaps" in w and "statistical" in w for w in rep.warnings), rep
    with pytest.raises(StatefulLayoutError, match="gaps"):   # statebatch's own windows: exact
        sb.validate(sb.make_windows(walk(40_000), 10, stride=20).X[:512], batch_size=8, stateful=True,
                    shuffle=False, emit_warnings=False)


def test_shuffled_lanes_warned():
    X = lanes(128, 8, 10, 3)
    X = X[np.random.default_rng(0).permutation(len(X))]
    rep = sb.validate(X, batch_size=8, stateful=True, shuffle=False, emit_warnings=False)
    assert rep.ok and any("shuffled" in w and "shuffle=False" in w and "statistical" in w for w in rep.warnings)


def test_channels_first_error_with_timesteps_warning_without():
    X = np.ascontiguousarray(lanes(16, 4, 50, 2).transpose(0, 2, 1))  # (64, 2, 50)
    with pytest.raises(ShapeError, match="channels-first") as info:
        sb.validate(X, batch_size=4, stateful=True, timesteps=50, shuffle=False, emit_warnings=False)
    assert "transpose(0, 2, 1)" in str(info.value)
    rep = sb.validate(X, batch_size=4, stateful=True, shuffle=False, emit_warnings=False, raise_errors=False)
    assert any("likely transposed" in w for w in rep.warnings), rep
    # stateless too: the (64, 2, 50)
    rep = sb.validate(X, batch_size=4, emit_warnings=False, raise_errors=False)
    assert any("likely transposed" in w for w in rep.warnings), rep
    assert not any("transposed" in w for w in sb.validate(lanes(16, 4, 50, 2), emit_warnings=False).warnings)


def test_check_layout_on_its_own():
    assert checks.check_layout(lanes(), 4) == []
    notes = checks.check_layout(walk(256 * 10).reshape(256, 10, 2), 4)   # statistical: a warning
    assert len(notes) == 1 and "natural order" in notes[0]
    with pytest.raises(StatefulLayoutError):                              # exact: an error
        checks.check_layout(sb.make_windows(walk(256 * 10), 10, stride=10).X, 4)


def test_channels_first_with_a_model_is_an_error_naming_the_transpose():
    import keras

    inp = keras.Input(batch_shape=(4, 50, 2))
    model = keras.Model(inp, keras.layers.LSTM(2, stateful=True)(inp))
    X = np.ascontiguousarray(lanes(16, 4, 50, 2).transpose(0, 2, 1))  # (64, 2, 50)
    rep = sb.validate(X, model=model, shuffle=False, raise_errors=False, emit_warnings=False)
    assert not rep.ok
    assert any("channels-first" in str(e) and "transpose(0, 2, 1)" in str(e) for e in rep.errors), rep
    assert rep.layout is not None and rep.layout.kind == "channels_first"
    assert sb.validate(np.ascontiguousarray(X.transpose(0, 2, 1)), model=model, shuffle=False,
                       emit_warnings=False).ok
