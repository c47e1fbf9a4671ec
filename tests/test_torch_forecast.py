"""Forecasting windows through ``torch.utils.data`` (issue 24): ``DataLoader(WindowDataset(w), ...)`` serves
``ForecastBatch`` named tuples of tensors, one gather per batch, with every DataLoader form a user reaches for."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, default_collate

import statebatch as sb
from statebatch import torch as sbt
from statebatch.errors import ParameterError
from statebatch.materialise.forecast import FORECAST_KEYS, ForecastBatch


def frame(lengths=(9, 7, 6, 12), seed=0, nan_fraction=0.1):
    """A long frame: id, t, y (target, NaN here and there), x (observed), k0/k1 (known), store/size (static)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, n in enumerate(lengths):
        parts.append(pd.DataFrame({
            "id": f"s{i}", "t": np.arange(n), "y": rng.normal(10 * i, 1 + i, n), "x": rng.normal(size=n),
            "k0": rng.normal(size=n), "k1": rng.normal(size=n), "store": ["north", "south", "east"][i % 3],
            "size": float(i + 1)}))
    df = pd.concat(parts, ignore_index=True)
    df[["y", "x", "k0", "k1", "size"]] = df[["y", "x", "k0", "k1", "size"]].astype(np.float32)
    for c in ("y", "x"):
        df.loc[rng.random(len(df)) < nan_fraction, c] = np.nan
    return df


def windows(full=True, **kw):
    """Forecasting windows with every key (``full``) or only past/future/static/y."""
    extra = dict(min_timesteps=2, scale="series", missing="mask") if full else {}
    return sb.make_windows(frame(nan_fraction=0.1 if full else 0.0), 4, id_col="id", time_col="t",
                           feature_cols=["x"], target_cols=["y"], known_cols=["k0", "k1"],
                           static_cols=["store", "size"], n_ahead=2, **{**extra, **kw})


W = windows(batch_size=6, shuffle=True, seed=3)
W_PLAIN = windows(full=False, batch_size=6)


def assert_batch_is(b, w, idx):
    """Every field of the served batch ``b`` equals ``w.arrays()[key][idx]``, with forecast_batch's dtypes;
    keys the windows do not have are None."""
    assert type(b) is ForecastBatch and b._fields == FORECAST_KEYS
    ref = w.arrays()
    want = sbt.forecast_batch(w.take(idx))
    for name in FORECAST_KEYS:
        got = getattr(b, name)
        if name not in ref:
            assert got is None and getattr(want, name) is None, name
            continue
        assert isinstance(got, torch.Tensor) and got.dtype == getattr(want, name).dtype, name
        np.testing.assert_array_equal(got.numpy(), ref[name][np.asarray(idx)], err_msg=name)


class Recording(sbt.WindowDataset):
    """WindowDataset that notes the indices the loader asks for (the order shuffle=True drew)."""

    def __init__(self, w):
        super().__init__(w)
        self.asked = []

    def __getitems__(self, indices):
        self.asked.append(list(indices))
        return super().__getitems__(indices)


@pytest.mark.parametrize("w", [W, W_PLAIN], ids=["every_key", "past_future_static_y"])
def test_natural_call_shuffled_serves_every_window_once_with_its_values(w):
    ds = Recording(w)
    assert len(ds) == w.n_windows
    served = list(DataLoader(ds, batch_size=5, shuffle=True))
    assert len(served) == len(ds.asked) == -(-len(ds) // 5)
    order = [i for idx in ds.asked for i in idx]
    assert sorted(order) == list(range(len(ds))) and order != sorted(order)
    for b, idx in zip(served, ds.asked):
        assert_batch_is(b, w, idx)


def test_batch_sampler_form_serves_the_windows_own_batches_every_epoch():
    ds, sampler = sbt.WindowDataset(W), sbt.WindowBatchSampler(W)
    seen = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        served = list(DataLoader(ds, batch_sampler=sampler))
        plan = sampler.batches(epoch)
        assert len(served) == len(plan) == W.plan(epoch).n_batches
        for k, (b, idx) in enumerate(zip(served, plan)):
            assert_batch_is(b, W, idx)
            own = sbt.forecast_batch(W.batch(k, epoch))
            assert all((x is None and y is None) or torch.equal(x, y) for x, y in zip(b, own))
        seen.append(np.concatenate(plan))
    assert sorted(seen[0]) == list(range(len(ds))) and not np.array_equal(seen[0], seen[1])  # reshuffled


def test_items_are_one_window_without_the_batch_axis_and_collate_like_the_gathered_batch():
    ds = sbt.WindowDataset(W)
    for i in (0, 3, -1):
        item = ds[i]
        assert type(item) is ForecastBatch
        j = i % len(ds)
        for name in FORECAST_KEYS:
            np.testing.assert_array_equal(getattr(item, name).numpy(), W.arrays()[name][j], err_msg=name)
    plain = sbt.WindowDataset(W_PLAIN)[2]
    assert plain.mask is None and plain.scale is None and tuple(plain.past.shape) == (4, W_PLAIN.n_features)
    idx = [5, 0, 2]
    stacked = default_collate([ds[i] for i in idx])  # items collated one by one, as a custom sampler path would
    assert_batch_is(stacked, W, idx)
    gathered = ds.__getitems__(idx)
    assert len(gathered) == 3 and type(gathered[1]) is ForecastBatch
    assert_batch_is(default_collate(gathered), W, idx)
    assert_batch_is(default_collate(list(gathered)), W, idx)  # a filled list: stacked field by field
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ParameterError, match="disagree on 'mask'"):
        default_collate([ds[0], plain._replace(static=ds[0].static, past=ds[0].past, future=ds[0].future)])
    with pytest.raises(ParameterError, match="cannot be stacked on 'past'"):  # windows of two make_windows calls
        default_collate([ds[0], ds[1]._replace(past=ds[1].past[1:])])


def test_ranks_of_a_distributed_sampler_share_the_windows_out():
    ds = sbt.WindowDataset(W)
    everything = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=1)
        sampler.set_epoch(3)
        order = list(sampler)
        for k, b in enumerate(DataLoader(ds, batch_size=4, sampler=sampler)):
            assert_batch_is(b, W, order[4 * k:4 * k + 4])
        everything += order
    assert set(everything) == set(range(len(ds)))  # DistributedSampler pads to equal ranks: a repeat at most


def test_worker_processes_spawned_serve_the_same_batches():
    ds = sbt.WindowDataset(W)
    again = pickle.loads(pickle.dumps(ds))
    assert all(torch.equal(a, b) for a, b in zip(again[4], ds[4]))
    sampler = sbt.WindowBatchSampler(W)
    served = list(DataLoader(ds, batch_sampler=sampler, num_workers=2, multiprocessing_context="spawn"))
    for b, idx in zip(served, sampler.batches(0), strict=True):
        assert_batch_is(b, W, idx)


class Seq2Seq(nn.Module):
    """A GRU encoder over ``past`` (and its mask), a GRU decoder over ``future`` + ``static``, one output a step."""

    def __init__(self, n_past, n_future, n_static, n_targets, hidden=8):
        super().__init__()
        self.encoder = nn.GRU(n_past + 1, hidden, batch_first=True)
        self.decoder = nn.GRU(n_future + n_static, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_targets)

    def forward(self, b):
        mask = b.mask.unsqueeze(-1).to(b.past.dtype)
        _, h = self.encoder(torch.cat([b.past * mask, mask], dim=-1))
        static = b.static.to(b.future.dtype).unsqueeze(1).expand(-1, b.future.shape[1], -1)
        out, _ = self.decoder(torch.cat([b.future, static], dim=-1), h)
        return self.head(out)


def test_a_torch_encoder_decoder_trains_on_a_loader_batch():
    torch.manual_seed(0)
    b = next(iter(DataLoader(sbt.WindowDataset(W), batch_size=8, shuffle=True)))
    model = Seq2Seq(b.past.shape[-1], b.future.shape[-1], b.static.shape[-1], b.y.shape[-1])
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pred = model(b)
    assert pred.shape == b.y.shape == (8, 2, 1)
    obs = b.y_observed.to(pred.dtype)
    loss = ((pred - b.y) ** 2 * obs).sum() / obs.sum()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))
    back = W.inverse(pred.detach().numpy(), b.scale.numpy())  # the scale travels with the batch
    assert back.shape == (8, 2, 1) and np.isfinite(back).all()


def test_float64_frames_give_float64_tensors_and_dtype_float32_gives_what_a_default_module_takes():
    # docs/guides/forecasting.md: the tensors keep the windows' dtype; dtype="float32" for a default torch module
    df = frame(nan_fraction=0.0).astype({"y": np.float64, "x": np.float64, "k0": np.float64, "k1": np.float64})
    kw = dict(id_col="id", time_col="t", feature_cols=["x"], target_cols=["y"], known_cols=["k0", "k1"],
              static_cols=["store"], n_ahead=2, scale="window", min_timesteps=2)
    lstm = nn.LSTM(3, 3, batch_first=True)  # past: x, k0, k1 (feature_cols names no target)
    b64 = next(iter(DataLoader(sbt.WindowDataset(sb.make_windows(df, 4, **kw)), batch_size=5)))
    assert b64.past.dtype == torch.float64
    with pytest.raises((RuntimeError, ValueError), match="dtype"):  # torch's own refusal (ValueError in 2.13)
        lstm(b64.past)
    b32 = next(iter(DataLoader(sbt.WindowDataset(sb.make_windows(df, 4, dtype="float32", **kw)), batch_size=5)))
    assert {b32.past.dtype, b32.future.dtype, b32.y.dtype, b32.scale.dtype} == {torch.float32}
    assert b32.static.dtype == torch.int64 and b32.mask.dtype == torch.bool
    assert lstm(b32.past)[0].shape == (5, 4, 3)
