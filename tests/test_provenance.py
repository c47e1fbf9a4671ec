"""Arrays statebatch hands out are recognised when they come back (issue 21): the verdict for
statebatch-made data is exact, with the plan's batch size and resets, and rows of such an array
reordered (permuted inside batches, fit(shuffle=True) order) are exact evidence of the mistake."""
import gc
import warnings

import numpy as np
import pytest

import statebatch as sb
from statebatch.results import provenance
from statebatch.errors import OverlappingWindowsError, ShapeError, ShuffleError, StatefulLayoutError


def walk(steps, f=3, seed=0):
    return np.cumsum(np.random.default_rng(seed).normal(size=(steps, f)), axis=0).astype("float32")


def permute_in_batches(X, b, seed=0):
    nb = len(X) // b
    rows = np.argsort(np.random.default_rng(seed).random((nb, b)), axis=1)
    rows[0] = np.arange(b)[::-1]                  # at least one batch really changed
    return np.take_along_axis(X[: nb * b].reshape((nb, b) + X.shape[1:]), rows[:, :, None, None],
                              axis=1).reshape((nb * b,) + X.shape[1:])


def test_arranged_lanes_are_exact_with_batch_size_and_resets():
    series = [walk(900, seed=s) for s in range(6)]
    a = sb.arrange_stateful(series, 10, 4)
    v = sb.detect_layout(a.X, 4)
    assert v.kind == "lanes" and v.exact and "arrange_stateful" in v.evidence
    resets = int(np.count_nonzero(a.resets[1:]))
    assert resets > 0 and f"{resets} mid-epoch lane reset(s)" in v.evidence
    # the right layout, but with resets a plain model.fit would not do: a warning with the fix (no error)
    with pytest.warns(sb.StatebatchWarning, match="fit_stateful"):
        rep = sb.validate(a.X, batch_size=4, stateful=True, shuffle=False)
    assert rep.ok and rep.info["layout_evidence"] == "exact" and len(rep.warnings) == 1
    # the same array read with another batch size: exact, and the fix names the plan's batch size
    with pytest.raises(ShuffleError, match="batch size 4") as info:
        sb.validate(a.X, batch_size=8, stateful=True, shuffle=False, emit_warnings=False)
    assert "batch_size=4" in str(info.value)
    # a batch view of the same lanes
    assert sb.detect_layout(a.batch_view.reshape(-1, 10, 3), 4).exact


def test_rows_permuted_inside_batches_of_statebatch_lanes_are_exact_evidence():
    a = sb.arrange_stateful(walk(8000), 10, 4)
    Xp = permute_in_batches(a.X, 4)
    v = sb.detect_layout(Xp, 4)
    assert v.kind == "shuffled_lanes" and v.exact and "permuted inside each batch" in v.evidence
    with pytest.raises(ShuffleError, match="permuted inside each batch"):
        sb.validate(Xp, batch_size=4, stateful=True, shuffle=False, emit_warnings=False)
    # and for one step per row, where the values alone could not tell
    a1 = sb.arrange_stateful(walk(4000, f=2), 1, 8)
    with pytest.raises(ShuffleError):
        sb.validate(permute_in_batches(a1.X, 8), batch_size=8, stateful=True, shuffle=False, emit_warnings=False)


@pytest.mark.parametrize("t, b", [(1, 8), (10, 4)])
def test_fit_shuffle_order_of_statebatch_lanes_is_exact_evidence(t, b):
    a = sb.arrange_stateful(walk(6000, f=4), t, b)
    shuffled = a.X[np.random.default_rng(1).permutation(len(a.X))]    # what fit(shuffle=True) serves
    v = sb.detect_layout(shuffled, b)
    assert v.kind == "shuffled_lanes" and v.exact and "reordered" in v.evidence
    e = sb.explain(shuffled, batch_size=b, stateful=True)
    assert e.problems and "exact evidence" in str(e)


def test_copies_in_lane_order_stay_lanes_and_in_place_changes_are_not_vouched_for():
    a = sb.arrange_stateful(walk(8000), 10, 4)
    X = np.array(a.X)                              # a writable copy in lane order
    assert sb.detect_layout(X, 4).kind == "lanes" and sb.detect_layout(X, 4).exact
    np.random.default_rng(0).shuffle(X)            # shuffled in place: still found from the original rows
    v = sb.detect_layout(X, 4)
    assert v.kind == "shuffled_lanes" and v.exact
    # a windows array changed in place is not vouched for by its record any more
    w = sb.make_windows(walk(3000), 10, stride=10, copy=True)
    Xw = w.X
    assert sb.detect_layout(Xw, 4).exact and sb.detect_layout(Xw, 4).kind == "natural_order_chunks"
    Xw[:] = walk(len(Xw) * 10, seed=5).reshape(Xw.shape)
    assert not sb.detect_layout(Xw, 4).exact


def test_windows_are_exact_whatever_the_stride():
    s = walk(20_000)
    X = sb.make_windows(s, 10).X
    with pytest.raises(OverlappingWindowsError, match="make_windows"):
        sb.validate(X[: len(X) // 8 * 8], batch_size=8, stateful=True, shuffle=False, emit_warnings=False)
    with pytest.raises(StatefulLayoutError, match="natural order"):
        sb.validate(sb.make_windows(s, 10, stride=10).X, batch_size=8, stateful=True, shuffle=False,
                    emit_warnings=False)
    v = sb.detect_layout(sb.make_windows(s, 10, stride=25).X, 8)
    assert v.kind == "sliding_windows" and v.exact and v.stride == 25 and "gaps" in v.evidence
    # batch size 1 over consecutive chunks is the lane order
    assert sb.detect_layout(sb.make_windows(s, 10, stride=10).X, 1).kind == "lanes"


def test_bucket_batches_are_independent_sequences():
    rng = np.random.default_rng(0)
    seqs = [np.cumsum(rng.normal(size=(int(n), 2)), axis=0) for n in rng.integers(20, 60, 64)]
    bk = sb.bucket_batches(seqs, 8)
    xb = bk.batch(0)[0]
    v = sb.detect_layout(xb, 2)
    assert v.kind == "independent" and v.exact and "bucket_batches" in v.evidence


def test_record_goes_with_the_array():
    a = sb.arrange_stateful(walk(4000), 10, 4)
    key = provenance._buffer_key(a.X)
    assert key in provenance._REGISTRY and provenance.provenance_of(a.X) is not None
    del a
    gc.collect()
    assert key not in provenance._REGISTRY
    # a plain array is never taken for statebatch's
    assert provenance.provenance_of(walk(400).reshape(40, 10, 3)) is None


def test_arguments_that_do_not_match_x_are_refused():
    X = walk(400, f=1).reshape(40, 10, 1)
    with pytest.raises(ShapeError, match="timesteps=7, features=3"):
        sb.detect_layout(X, 4, timesteps=7, features=3)
    with pytest.raises(ShapeError, match="timesteps=7"):
        sb.detect_layout(X, 4, timesteps=7)
    assert sb.detect_layout(X, 4, timesteps=10, features=1).kind != "channels_first"
    assert sb.detect_layout(X, 4, timesteps=1, features=10).kind == "channels_first"   # swapped: transposed


def test_lanes_cut_by_hand_that_share_rows_with_statebatch_lanes_are_not_called_reordered():
    # found by a newcomer trial: correct lanes cut by hand from a series that statebatch also arranged
    # (in the same process) share some rows with statebatch's X at other positions; only a permutation of
    # ALL of statebatch's rows is exact evidence of reordering.
    co2 = sb.load_co2().interpolate().to_numpy(dtype=np.float32)
    T, B = 16, 8
    made = sb.arrange_stateful(co2, timesteps=T, batch_size=B).X  # kept alive: registered
    L = (len(co2) // (B * T)) * B * T
    seg = co2[:L].reshape(B, -1, co2.shape[1])
    K = seg.shape[1] // T
    X = np.stack([seg[i, k * T:(k + 1) * T] for k in range(K) for i in range(B)])
    assert made.shape[0] > 0
    sb.validate(X, batch_size=B, stateful=True, shuffle=False)  # no ShuffleError
    assert sb.detect_layout(X, B).kind == "lanes"
    # the same array made by statebatch, its rows shuffled, stays exact evidence
    with pytest.raises(sb.ShuffleError):
        sb.validate(made[np.random.default_rng(0).permutation(made.shape[0])], batch_size=B, stateful=True,
                    shuffle=False)


def test_statebatch_lanes_with_resets_fed_as_plain_arrays_get_a_warning_with_the_fix():
    # newcomer trial: a.X, a.y of lanes with resets passed validate silently, though a plain model.fit
    # neither resets those lanes nor weighs out their padding
    co2 = sb.load_co2().interpolate().to_numpy(dtype=np.float32)
    a = sb.arrange_stateful([co2[:300], co2[300:700], co2[700:900], co2[900:1000]], timesteps=12, batch_size=2)
    assert a.resets[1:].any()
    with pytest.warns(sb.StatebatchWarning, match="fit_stateful"):
        sb.validate(a.X, a.y, batch_size=2, stateful=True, shuffle=False)
    one = sb.arrange_stateful(co2[:480], timesteps=12, batch_size=2)  # one series: no reset after batch 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb.validate(one.X, one.y, batch_size=2, stateful=True, shuffle=False)
