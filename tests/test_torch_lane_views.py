"""statebatch.torch.LaneLoader serving one long series (word_language_model's ``batchify`` layout) as views.

The series is copied a block of batches at a time; every batch must equal the arrangement's own batch,
whatever the block size, the resume point, the dtype or the targets, and a batch changed in place must
reach neither the series nor any other batch nor a later epoch.
"""

from unittest import mock

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch import torch as sbt
from statebatch.adapters.torch import lanes


def _arranged(kind, data, T, B):
    options = {"next": {}, "none": {"targets": None}, "many_to_one": {"return_sequences": False},
               "horizon_3": {"horizon": 3}}.get(kind, {})
    if kind == "own":
        options = {"targets": np.asarray(data[:, :1] if data.ndim == 2 else data, dtype=np.float32) * 2}
    return sb.arrange_stateful(data, T, B, tail="drop", **options)


def _served(loader, stop=None):
    out = []
    if stop == 0:
        return out
    for b in loader:
        out.append(b)
        if stop is not None and len(out) == stop:
            break
    return out


def _equal(a, b):
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


@settings(max_examples=40, deadline=None)
@given(chunks=st.integers(1, 12), extra=st.integers(0, 40), T=st.integers(1, 7), B=st.integers(1, 6),
       features=st.integers(1, 3), ints=st.booleans(),
       kind=st.sampled_from(["next", "none", "own", "many_to_one", "horizon_3"]),
       block=st.integers(1, 3000), cut=st.integers(0, 14), seed=st.integers(0, 2**16))
def test_one_series_in_blocks_equals_the_arrangements_batches_and_resumes_anywhere(
        chunks, extra, T, B, features, ints, kind, block, cut, seed):
    rng = np.random.default_rng(seed)
    length = B * T * chunks + 3 + extra  # every lane holds at least one chunk (and 3 steps of horizon)
    data = rng.integers(0, 50, length) if ints else rng.standard_normal((length, features)).astype(np.float32)
    arranged = _arranged(kind, data, T, B)
    n = arranged.plan(0).n_batches
    reference = _served(sbt.LaneLoader(arranged, prefetch=2))  # batch by batch on a thread: another path
    arranged.set_epoch(0)
    with mock.patch.object(lanes, "_BLOCK_BYTES", block):  # from one batch per block to the whole epoch
        loader = sbt.LaneLoader(arranged)
        first = _served(loader, min(cut, n))
        state = loader.state_dict()
        resumed = sbt.LaneLoader(arranged)
        resumed.load_state_dict(state)
        rest = _served(resumed)
    got = first + rest
    assert len(got) == len(reference) == n
    for k, (b, ref) in enumerate(zip(got, reference)):
        assert all(_equal(t, r) for t, r in zip(b, ref)), f"batch {k}"
        want = arranged.batch(k, 0)
        np.testing.assert_array_equal(b.x.numpy(), want[0])
        if len(want) > 1:
            np.testing.assert_array_equal(b.y.numpy(), want[1])
            np.testing.assert_array_equal(b.weight.numpy(), want[2])
        assert b.x._base is not None  # served as a view of the pass's tensors, not gathered for the batch
        assert all(t.is_contiguous() for t in b if t is not None)


def test_batches_changed_in_place_reach_neither_the_series_nor_other_batches_nor_later_epochs():
    tokens = np.arange(3 * 4 * 30 + 1)
    before = tokens.copy()
    arranged = sb.arrange_stateful(tokens, 4, 3, tail="drop")
    with mock.patch.object(lanes, "_BLOCK_BYTES", 600):  # several batches in a block, several blocks
        loader = sbt.LaneLoader(arranged)
        for epoch in range(2):
            for k, b in enumerate(loader):
                x, y, w = arranged.batch(k, epoch)
                np.testing.assert_array_equal(b.x.numpy(), x)
                np.testing.assert_array_equal(b.y.numpy(), y)
                np.testing.assert_array_equal(b.weight.numpy(), w)
                np.testing.assert_array_equal(b.reset.numpy(), np.full(3, k == 0))
                b.x.add_(1000)
                b.y.mul_(-1)
                b.weight.zero_()
                b.reset.logical_not_()
                b.reset[0] = False
    np.testing.assert_array_equal(tokens, before)
    assert arranged.plan(0).resets[1:].sum() == 0


def test_one_series_beyond_the_epoch_cap_is_still_served_as_views_others_batch_by_batch():
    long = np.random.default_rng(2).standard_normal((500, 2)).astype(np.float32)
    many = [long[:120], long[120:250], long[250:370], long[370:]]
    with mock.patch.object(lanes, "_VIEW_EPOCH_BYTES", 0):
        one = [b for b in sbt.LaneLoader(sb.arrange_stateful(long, 5, 4, tail="drop"))]
        other = [b for b in sbt.LaneLoader(sb.arrange_stateful(many, 5, 4))]
    assert all(b.x._base is not None for b in one)  # blocks: no whole-epoch copy, so no cap
    assert all(b.x._base is None for b in other)  # over the cap: gathered batch by batch
    want = sb.arrange_stateful(long, 5, 4, tail="drop")
    for k, b in enumerate(one):
        np.testing.assert_array_equal(b.x.numpy(), want.batch(k)[0])


def test_targets_flatten_with_view_as_word_language_model_does():
    tokens = np.random.default_rng(3).integers(0, 100, 20 * 35 * 4 + 1)
    for x, y, w, _reset in sbt.LaneLoader(sb.arrange_stateful(tokens, 35, 20, tail="drop")):
        flat = y.view(-1)  # raises on a tensor that is not contiguous
        assert flat.shape == (20 * 35,) and x.view(-1).shape == (20 * 35,) and w.view(-1).shape == (20 * 35,)
        np.testing.assert_array_equal(flat.numpy(), y.numpy().reshape(-1))
