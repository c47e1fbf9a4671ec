"""What the Keras feeds hand out equals the result's own batches: to_tf_dataset's blocks of batches
and StatefulDataset's views of a materialised epoch change how batches travel, never what they hold.

Each check compares against a *twin* result built from the same inputs and parameters (its
``batch(k, epoch)``, computed batch by batch without any block or cache), epoch by epoch.
"""

from __future__ import annotations

import numpy as np
import pytest

import statebatch as sb
import statebatch.adapters.keras as sk  # its internal sizes are patched below (in sk.tfdata, sk.datasets)


def _many_series(seed=0, n=23, f=3):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(k), f)).astype("float32") for k in rng.integers(5, 90, size=n)]


ARRANGEMENTS = {
    "one series": lambda: sb.arrange_stateful(np.random.default_rng(1).normal(size=(2001, 2)).astype("float32"),
                                              10, 4, targets="next"),
    "many, packed, remainder keep": lambda: sb.arrange_stateful(_many_series(), 7, 5, targets="next"),
    "many, shuffled every epoch": lambda: sb.arrange_stateful(_many_series(2), 6, 4, targets="next", shuffle=True,
                                                              seed=3),
    "one target per chunk": lambda: sb.arrange_stateful(_many_series(4), 8, 3, targets="next",
                                                        return_sequences=False),
    "no targets": lambda: sb.arrange_stateful(_many_series(5), 5, 4),
    "jitter (per-batch path)": lambda: sb.arrange_stateful(_many_series(6), 9, 4, targets="next", jitter=3, seed=1),
    "split validation (held-out weights)": lambda: sb.arrange_stateful(_many_series(7), 6, 4, targets="next")
    .split(0.25)[1],
}


def _assert_same(got, want, where):
    assert len(got) == len(want), where
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), w, err_msg=where)


@pytest.mark.parametrize("name", list(ARRANGEMENTS))
@pytest.mark.parametrize("block_bytes", [1, 3000, 8 << 20])
def test_tf_dataset_blocks_equal_batches(name, block_bytes, monkeypatch):
    monkeypatch.setattr(sk.tfdata, "_BLOCK_BYTES", block_bytes)  # one batch per block, a few, all in one block
    a, twin = ARRANGEMENTS[name](), ARRANGEMENTS[name]()
    ds = sk.to_tf_dataset(a)
    for epoch in range(3):  # every pass is the next epoch (shuffled plans repack)
        got = list(ds)
        assert len(got) == twin.plan(epoch).n_batches
        for k, item in enumerate(got):
            _assert_same(item, twin.batch(k, epoch), f"{name}: epoch {epoch}, batch {k}")


def test_tf_dataset_blocks_of_a_materialised_epoch_and_of_buckets(monkeypatch):
    monkeypatch.setattr(sk.tfdata, "_BLOCK_BYTES", 5000)
    a, twin = ARRANGEMENTS["one series"](), ARRANGEMENTS["one series"]()
    a.X  # noqa: B018  the epoch is cached: blocks are views of it
    for k, item in enumerate(sk.to_tf_dataset(a)):
        _assert_same(item, twin.batch(k), f"cached epoch, batch {k}")
    # buckets: batches of different lengths and sizes; a block holds only equal shapes
    rng = np.random.default_rng(3)
    seqs = [rng.normal(size=(int(n), 2)).astype("float32") for n in rng.integers(3, 40, size=150)]
    targets = np.arange(150, dtype="float32")[:, None]
    bk, bk_twin = (sb.bucket_batches(seqs, 8, targets=targets, seed=2) for _ in range(2))
    ds = sk.to_tf_dataset(bk)
    for epoch in range(2):  # each pass re-plans (reshuffles) the next epoch
        got = list(ds)
        assert len(got) == bk_twin.plan(epoch).n_batches
        assert len({tuple(x.shape) for x, *_ in got}) > 1  # shapes do vary from batch to batch
        for k, item in enumerate(got):
            _assert_same(item, bk_twin.batch(k, epoch), f"buckets: epoch {epoch}, batch {k}")


@pytest.mark.backend
@pytest.mark.parametrize("budget", [0, 1 << 30])
@pytest.mark.parametrize("name", ["one series", "many, shuffled every epoch", "split validation (held-out weights)"])
def test_stateful_dataset_serves_the_same_batches_with_or_without_the_epoch_cache(name, budget, monkeypatch):
    monkeypatch.setattr(sk.datasets, "_EPOCH_CACHE_BYTES", budget)  # 0: gathered batch by batch; 1 GB: views of the epoch
    a, twin = ARRANGEMENTS[name](), ARRANGEMENTS[name]()
    ds = sk.StatefulDataset(a, resets_by="manual")
    for epoch in range(2):
        for k in range(len(ds)):
            _assert_same(ds[k], twin.batch(k, epoch), f"{name}: epoch {epoch}, batch {k}")
        assert bool(a._cache) == (budget > 0), "the epoch is materialised exactly when it fits the budget"
        if budget:
            assert not ds[0][0].flags.writeable  # views of the arrangement's own epoch arrays are read-only
        ds.on_epoch_end()
