"""statebatch.torch: lanes, state carrying and validation with real nn.LSTM / nn.GRU.

Every stateful claim is checked against the real thing: the same module (same weights) run on each
whole series from zero state.
"""

import threading
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import statebatch as sb
from statebatch import torch as sbt

torch.manual_seed(0)
TOL = dict(rtol=1e-4, atol=1e-5)


def _series(n=9, lo=3, hi=60, features=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(k), features)).astype(np.float32) for k in rng.integers(lo, hi, n)]


def _reference(rnn, series):
    """Each series alone, from zero state: outputs (length, hidden)."""
    with torch.no_grad():
        return [rnn(torch.from_numpy(s)[None])[0][0].numpy() for s in series]


def _run_epoch(rnn, loader, carrier):
    outs = []
    with torch.no_grad():
        for x, _y, _w, reset in loader:
            out, h = rnn(x, carrier(reset))
            carrier.update(h)
            outs.append(out.numpy())
    return outs


def _check_against_reference(arranged, epoch, outs, ref):
    """Every real step of every lane equals the series' own output at that step; every usable step is seen."""
    plan = arranged.plan(epoch)
    assert len(outs) == plan.n_batches
    seen = np.zeros(len(ref), dtype=np.int64)
    for k, out in enumerate(outs):
        for i in range(plan.batch_size):
            s = int(plan.series[k, i])
            if s < 0:
                continue
            st, v = int(plan.step[k, i]), int(plan.valid[k, i])
            np.testing.assert_allclose(out[i, :v], ref[s][st:st + v], **TOL)
            seen[s] += v
    np.testing.assert_array_equal(seen, [len(r) - 1 for r in ref])  # targets="next": the last step is no input


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_lstm_and_gru_through_loader_equal_each_series_alone_every_epoch_of_a_repacked_plan(kind):
    series = _series(n=11)
    cls = nn.LSTM if kind == "lstm" else nn.GRU
    rnn = cls(3, 5, num_layers=2, batch_first=True)
    ref = _reference(rnn, series)
    arranged = sb.arrange_stateful(series, 7, 4, shuffle=True, seed=3)
    loader = sbt.LaneLoader(arranged)
    carrier = sbt.StateCarrier()
    plans = []
    for epoch in range(3):
        assert loader.epoch == epoch
        outs = _run_epoch(rnn, loader, carrier)
        _check_against_reference(arranged, epoch, outs, ref)
        plans.append(arranged.plan(epoch).series.copy())
    assert arranged.plan(0).resets[1:].any(), "the test needs mid-epoch resets"
    assert any(not np.array_equal(plans[0], p) for p in plans[1:]), "the test needs repacked epochs"


def test_jittered_lanes_and_prefetch_give_the_same_outputs():
    series = _series(n=6, lo=10, hi=80)
    rnn = nn.GRU(3, 4, batch_first=True)
    ref = _reference(rnn, series)
    arranged = sb.arrange_stateful(series, 9, 3, jitter=4, shuffle=True, seed=5)
    loader = sbt.LaneLoader(arranged, prefetch=3)
    for epoch in range(2):
        _check_against_reference(arranged, epoch, _run_epoch(rnn, loader, sbt.StateCarrier()), ref)


def test_without_the_resets_a_lane_leaks_state_into_the_next_series():
    # the check above can fail: ignoring `reset` gives different outputs where a lane changes series
    series = _series(n=8)
    rnn = nn.GRU(3, 4, batch_first=True)
    ref = _reference(rnn, series)
    arranged = sb.arrange_stateful(series, 7, 3)
    outs, h = [], None
    with torch.no_grad():
        for x, _y, _w, _reset in sbt.LaneLoader(arranged):
            out, h = rnn(x, h)
            outs.append(out.numpy())
    with pytest.raises(AssertionError):
        _check_against_reference(arranged, 0, outs, ref)


def test_truncated_bptt_training_epoch_loss_equals_the_per_series_loss():
    series = _series(n=10, lo=5, hi=50)
    torch.manual_seed(1)
    rnn = nn.LSTM(3, 6, batch_first=True)
    head = nn.Linear(6, 3)
    params = list(rnn.parameters()) + list(head.parameters())
    arranged = sb.arrange_stateful(series, 8, 4, shuffle=True, seed=2)
    loader = sbt.LaneLoader(arranged)
    carrier = sbt.StateCarrier()
    opt = torch.optim.SGD(params, lr=0.0)  # a real training step that keeps the weights, to compare
    total = torch.zeros((), dtype=torch.float64)
    for x, y, w, reset in loader:
        opt.zero_grad()
        out, h = rnn(x, carrier(reset))
        carrier.update(h)
        loss = (((head(out) - y) ** 2).sum(-1) * w).sum()
        loss.backward()
        opt.step()
        total += loss.detach().double()
    with torch.no_grad():
        expected = sum(float(((head(rnn(torch.from_numpy(s[:-1])[None])[0]) - torch.from_numpy(s[1:])[None]) ** 2)
                             .sum()) for s in series)
    assert float(total) == pytest.approx(expected, rel=1e-5)

    # and it trains: a few epochs with a learning rate lower the loss
    opt = torch.optim.Adam(params, lr=0.02)
    losses = []
    for _ in range(8):
        epoch_loss = 0.0
        for x, y, w, reset in loader:
            opt.zero_grad()
            out, h = rnn(x, carrier(reset))
            carrier.update(h)
            loss = (((head(out) - y) ** 2).sum(-1) * w).sum() / w.sum()
            loss.backward()  # a second backward through a carried state would raise: it is detached
            opt.step()
            epoch_loss += float(loss.detach())
        losses.append(epoch_loss)
    assert losses[-1] < losses[0]


def test_many_to_one_weights_mark_full_chunks():
    series = _series(n=4, lo=10, hi=30)
    arranged = sb.arrange_stateful(series, 6, 2, return_sequences=False)
    for (_x, y, w, _reset), k in zip(sbt.LaneLoader(arranged), range(10 ** 6)):
        plan = arranged.plan(0)
        assert y.shape == (2, 3) and w.shape == (2,)
        np.testing.assert_array_equal(w.numpy(), (plan.valid[k] == 6).astype(np.float32))


@pytest.mark.parametrize("prefetch", [0, 2])  # the whole epoch as views, or batch by batch on a thread
@pytest.mark.parametrize("return_sequences", [True, False])
def test_no_targets_yields_none_and_weights_of_real_steps(prefetch, return_sequences):
    series = _series(n=3, lo=5, hi=20)
    arranged = sb.arrange_stateful(series, 4, 2, targets=None, return_sequences=return_sequences)
    plan = arranged.plan(0)
    served = 0
    for k, (_x, y, w, _reset) in enumerate(sbt.LaneLoader(arranged, prefetch=prefetch)):
        assert y is None
        real = np.arange(4)[None] < plan.valid[k][:, None]  # per step: 1 on real steps, 0 on padding
        np.testing.assert_array_equal(w.numpy(), real.astype(np.float32) if return_sequences
                                      else real.all(axis=1).astype(np.float32))  # many-to-one: a whole chunk
        served += 1
    assert served == plan.n_batches


# --------------------------------------------------------------------------- the loader's contract
def test_loader_refuses_shuffling_and_other_results():
    arranged = sb.arrange_stateful(_series(n=3), 4, 2)
    with pytest.raises(sb.ShuffleError, match="repack"):
        sbt.LaneLoader(arranged, shuffle=True)
    with pytest.raises(sb.ParameterError, match="arrange_stateful"):
        sbt.LaneLoader(sb.make_windows(_series(n=1)[0], 4))
    with pytest.raises(sb.ParameterError):
        sbt.LaneLoader(arranged, prefetch=-1)
    with pytest.raises(sb.ParameterError, match="device"):
        sbt.LaneLoader(arranged, device="no-such-device")


def test_resets_follow_the_schedule_of_each_epoch():
    series = _series(n=7)
    arranged = sb.arrange_stateful(series, 5, 3, shuffle=True, seed=0)
    loader = sbt.LaneLoader(arranged)
    for epoch in range(2):
        resets = np.stack([b.reset.numpy() for b in loader])
        expected = arranged.plan(epoch).resets.copy()
        expected[0] = True  # every lane starts the epoch from zero
        np.testing.assert_array_equal(resets, expected)
    carry_on = sbt.LaneLoader(sb.arrange_stateful(series[0], 5, 3), reset_on_epoch_begin=False)
    first = [b.reset.numpy() for b in carry_on]
    second = [b.reset.numpy() for b in carry_on]
    assert first[0].all() and not np.any(second)  # state flows from one epoch into the next


def test_set_epoch_serves_that_epochs_plan():
    arranged = sb.arrange_stateful(_series(n=8), 5, 3, shuffle=True, seed=4)
    loader = sbt.LaneLoader(arranged)
    loader.set_epoch(3)
    xs = [b.x.numpy() for b in loader]
    np.testing.assert_array_equal(np.concatenate(xs), np.concatenate([arranged.batch(k, 3)[0]
                                                                      for k in range(arranged.plan(3).n_batches)]))
    assert loader.epoch == 4


def test_read_only_batches_reach_torch_without_warning_and_without_touching_user_data():
    data = np.random.default_rng(0).standard_normal((200, 2)).astype(np.float32)
    before = data.copy()
    arranged = sb.arrange_stateful(data, 10, 4, tail="drop")
    _ = arranged.X  # the epoch is now cached as read-only arrays
    assert not arranged.batch(0)[0].flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x, y, _w, _reset in sbt.LaneLoader(arranged):
            x.mul_(0)
            y.add_(1)
    np.testing.assert_array_equal(data, before)
    np.testing.assert_array_equal(arranged.batch(0)[0], np.ascontiguousarray(arranged.X[:4]))
    assert arranged.X[:4].any()


def test_prefetch_keeps_the_order_and_stops_its_thread():
    arranged = sb.arrange_stateful(_series(n=12), 4, 3, shuffle=True, seed=9)
    plain = [b.x.numpy() for b in sbt.LaneLoader(arranged)]
    arranged.set_epoch(0)
    fetched = [b.x.numpy() for b in sbt.LaneLoader(arranged, prefetch=2)]
    assert len(plain) == len(fetched)
    for a, b in zip(plain, fetched):
        np.testing.assert_array_equal(a, b)
    threads = threading.active_count()
    for k, _ in enumerate(sbt.LaneLoader(arranged, prefetch=1)):
        if k == 1:
            break  # leaving early ends the reader thread
    import gc

    gc.collect()
    assert threading.active_count() == threads


def test_an_error_while_prefetching_is_raised_in_the_callers_thread(monkeypatch):
    arranged = sb.arrange_stateful(_series(n=5), 4, 2)
    real = arranged.batch

    def failing(k, epoch=None):
        if k == 2:
            raise sb.DataValueError("batch 2 is broken", "fix it")
        return real(k, epoch)

    monkeypatch.setattr(arranged, "batch", failing)
    got = []
    with pytest.raises(sb.DataValueError, match="batch 2"):
        for b in sbt.LaneLoader(arranged, prefetch=4):
            got.append(b)
    assert len(got) == 2


def test_pin_memory_without_cuda_warns_and_still_serves():
    arranged = sb.arrange_stateful(_series(n=3), 4, 2)
    if torch.cuda.is_available():
        loader = sbt.LaneLoader(arranged, pin_memory=True)
        assert all(b.x.is_pinned() for b in loader)
    else:
        with pytest.warns(sb.StatebatchWarning, match="pin_memory"):
            loader = sbt.LaneLoader(arranged, pin_memory=True)
        assert len(list(loader)) == arranged.plan(0).n_batches


# --------------------------------------------------------------------------- the state carrier
def test_carry_zeroes_reset_rows_of_stacked_bidirectional_lstm_state_and_detaches():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(5, 6, 3)
    _, (h, c) = lstm(x)
    assert h.shape == (4, 5, 4) and h.requires_grad
    reset = torch.tensor([False, True, False, False, True])
    h2, c2 = sbt.carry((h, c), reset)
    assert not h2.requires_grad and not c2.requires_grad
    for new, old in ((h2, h), (c2, c)):
        assert torch.all(new[:, [1, 4]] == 0)
        torch.testing.assert_close(new[:, [0, 2, 3]], old.detach()[:, [0, 2, 3]])
    assert h[:, 1].abs().sum() > 0  # the input is not modified


def test_carry_nested_states_with_batch_dim_0_and_wrong_layouts():
    state = {"cell": (torch.ones(3, 2), [torch.ones(3, 4, 5)]), "ssm": torch.ones(3, 7)}
    out = sbt.carry(state, np.array([True, False, True]), batch_dim=0)
    assert torch.all(out["cell"][0][[0, 2]] == 0) and torch.all(out["cell"][0][1] == 1)
    assert torch.all(out["cell"][1][0][[0, 2]] == 0) and torch.all(out["ssm"][1] == 1)
    with pytest.raises(sb.BatchSizeError, match="batch_dim"):
        sbt.carry(torch.ones(2, 3, 4), torch.tensor([True, False]))  # lanes are on axis 0 here
    with pytest.raises(sb.ParameterError, match="boolean"):
        sbt.carry(torch.ones(1, 2, 4), torch.tensor([1, 0]))
    with pytest.raises(sb.ParameterError, match="tensors"):
        sbt.carry(("h", 3), torch.tensor([True]))
    assert sbt.carry(None, torch.tensor([True])) is None


def test_validation_state_is_kept_apart_and_starts_from_zero():
    train_series, val_series = _series(n=6, seed=1), _series(n=4, seed=2)
    rnn = nn.LSTM(3, 5, batch_first=True)
    train = sb.arrange_stateful(train_series, 6, 3)
    val = sb.arrange_stateful(val_series, 6, 3)
    tl, vl = sbt.LaneLoader(train), sbt.LaneLoader(val, validation=True)
    carrier = sbt.StateCarrier()
    with torch.no_grad():
        batches = list(tl)
        half = len(batches) // 2
        for x, _y, _w, reset in batches[:half]:
            out, h = rnn(x, carrier(reset))
            carrier.update(h)
        before = carrier.snapshot()[1]
        with carrier.validation(vl):
            assert carrier.state is None
            outs = _run_epoch(rnn, vl, carrier)
        after = carrier.state
        # training resumes from exactly where it was: the rest of the epoch equals the series alone
        rest = []
        for x, _y, _w, reset in batches[half:]:
            out, h = rnn(x, carrier(reset))
            carrier.update(h)
            rest.append(out.numpy())
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    _check_against_reference(val, 0, outs, _reference(rnn, val_series))
    ref = _reference(rnn, train_series)
    full = [None] * half + rest
    plan = train.plan(0)
    for k in range(half, plan.n_batches):
        for i in range(3):
            s = int(plan.series[k, i])
            if s >= 0:
                st, v = int(plan.step[k, i]), int(plan.valid[k, i])
                np.testing.assert_allclose(full[k][i, :v], ref[s][st:st + v], **TOL)


def test_validation_of_a_split_in_time_equals_the_whole_series_run_on_the_held_out_steps():
    series = np.random.default_rng(3).standard_normal((300, 2)).astype(np.float32)
    rnn = nn.GRU(2, 4, batch_first=True)
    arranged = sb.arrange_stateful(series, 10, 3, tail="drop")
    train, val = arranged.split(0.3)
    carrier = sbt.StateCarrier()
    vl = sbt.LaneLoader(val, validation=True)
    with torch.no_grad():
        _run_epoch(rnn, sbt.LaneLoader(train), carrier)
        with carrier.validation(vl):
            vouts = _run_epoch(rnn, vl, carrier)
        whole = rnn(torch.from_numpy(series[None]))[0].numpy()[0]  # the series in one call, from zero state
    # the held-out steps (weighted) of the validation lanes equal the whole-series run at those steps
    weights = val.unbatch(val.sample_weight[..., None])[0][:, 0] > 0
    outs = val.unbatch(vouts)[0]
    # the last 30% of the 300 targets, less the partial chunk remainder="drop" leaves out (and reports)
    assert weights.sum() == 90 - val.left_out[0].steps == 81  # 9 steps of the last partial chunk dropped
    np.testing.assert_allclose(outs[weights], whole[: len(weights)][weights], **TOL)


def test_inference_block_without_data_starts_from_zero_and_restores():
    carrier = sbt.StateCarrier()
    carrier.update(torch.ones(1, 2, 3))
    with carrier.validation():
        assert carrier.state is None
        carrier.update(torch.full((1, 2, 3), 7.0))
    torch.testing.assert_close(carrier.state, torch.ones(1, 2, 3))
    carrier.zero([1])
    assert torch.all(carrier.state[:, 1] == 0) and torch.all(carrier.state[:, 0] == 1)
    carrier.zero(None)
    assert carrier.state is None


def test_the_example_script_runs():
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-W", "error", str(root / "examples" / "torch_stateful.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epoch 2: train loss" in done.stdout and "bucketing:" in done.stdout


def test_a_dataloader_may_carry_the_loader_in_process_but_refuses_worker_processes():
    from torch.utils.data import DataLoader

    arranged = sb.arrange_stateful(_series(n=6), 5, 2, shuffle=True, seed=1)
    direct = [b.x for b in sbt.LaneLoader(arranged)]
    arranged.set_epoch(0)
    via = [b.x for b in DataLoader(sbt.LaneLoader(arranged), batch_size=None)]
    assert len(direct) == len(via) and all(torch.equal(a, b) for a, b in zip(direct, via))
    assert arranged.epoch == 1  # the in-process pass moved the arrangement on
    with pytest.raises(sb.ParameterError, match="worker"):
        list(DataLoader(sbt.LaneLoader(arranged), batch_size=None, num_workers=1))
    with pytest.raises(ValueError, match="shuffle"):  # torch itself refuses to shuffle an iterable dataset
        DataLoader(sbt.LaneLoader(arranged), batch_size=None, shuffle=True)


def test_device_moves_every_tensor():
    arranged = sb.arrange_stateful(_series(n=3), 4, 2)
    for b in sbt.LaneLoader(arranged, device="cpu", prefetch=1):
        assert all(t.device == torch.device("cpu") for t in b)
        assert b.reset.dtype == torch.bool and b.weight.dtype == torch.float32


@given(lanes=st.integers(1, 9), stack=st.integers(1, 4), hidden=st.integers(1, 5), lstm=st.booleans(),
       batch_first_state=st.booleans(), data=st.data())
def test_carry_zeroes_exactly_the_reset_lanes_of_any_layout(lanes, stack, hidden, lstm, batch_first_state, data):
    reset = np.array(data.draw(st.lists(st.booleans(), min_size=lanes, max_size=lanes)))
    shape = (lanes, hidden) if batch_first_state else (stack, lanes, hidden)
    dim = 0 if batch_first_state else 1
    gen = torch.Generator().manual_seed(lanes * 100 + stack * 10 + hidden)
    h = torch.rand(shape, generator=gen) + 1.0  # never zero before the reset
    state = (h, h * 2) if lstm else h
    out = sbt.carry(state, reset, batch_dim=dim)
    for new, old in zip(out if lstm else (out,), state if lstm else (state,)):
        moved_new, moved_old = new.movedim(dim, 0), old.movedim(dim, 0)
        assert torch.all(moved_new[torch.from_numpy(reset)] == 0)
        assert torch.equal(moved_new[torch.from_numpy(~reset)], moved_old[torch.from_numpy(~reset)])


def test_window_dataset_checks_out_of_core_batches_for_nan_and_inf_as_the_windows_own_batches_do(tmp_path):
    # out-of-core data is scanned batch by batch as it is read; the DataLoader's batches must be too (they are
    # gathered by WindowDataset, not by windows.batch(k))
    import dask.array as da
    from torch.utils.data import DataLoader

    from statebatch.dask import prepare

    x = np.random.default_rng(3).normal(size=(600, 2)).astype("float32")
    x[345, 1] = np.inf
    store = prepare(da.from_array(x, chunks=200), tmp_path / "dirty", allow_inf=True)
    w = sb.make_windows(store, 10, batch_size=64)
    assert w._check_batches
    with pytest.raises(sb.DataValueError, match="inf in X"):
        for _ in w.batches():
            pass
    ds = sbt.WindowDataset(w)
    with pytest.raises(sb.DataValueError, match="inf in X") as caught:
        for _ in DataLoader(ds, batch_size=64, shuffle=True):
            pass
    assert "allow_inf=True" in str(caught.value) and "windows" in str(caught.value)
    with pytest.raises(sb.DataValueError, match="inf in X"):
        ds[340]  # one window holding the inf row
    clean = sb.make_windows(x[:300], 10, batch_size=64)  # in memory: checked up front, gathered by its tables
    got = torch.cat([b[0] for b in DataLoader(sbt.WindowDataset(clean), batch_size=64)])
    assert torch.equal(got, torch.from_numpy(np.ascontiguousarray(clean.X)))


@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=6), T=st.integers(1, 6), stride=st.integers(1, 3),
       n_ahead=st.integers(1, 3), seqs=st.booleans(), data=st.data())
def test_window_dataset_batches_of_any_indices_equal_the_windows_arrays(lengths, T, stride, n_ahead, seqs, data):
    # the DataLoader path gathers from tables made once (views + every window's start row); the reference is
    # windows.X / windows.y, gathered from the row source by another path
    rng = np.random.default_rng(len(lengths) * 7 + T)
    series = [rng.normal(size=(n, 2)).astype(np.float32) for n in lengths]
    kw = dict(return_sequences=True) if seqs else dict(n_ahead=n_ahead)
    try:
        w = sb.make_windows(series, T, stride=stride, targets=[s[:, :1] for s in series], **kw)
    except sb.StatebatchError:  # no window fits (a ShapeError): nothing to serve
        return
    idx = data.draw(st.lists(st.integers(0, w.n_windows - 1), min_size=1, max_size=12))
    ds = sbt.WindowDataset(w)
    x, y = ds.__getitems__(idx).gathered
    np.testing.assert_array_equal(x.numpy(), np.asarray(w.X)[idx])
    np.testing.assert_array_equal(y.numpy(), np.asarray(w.y)[idx])
    assert x.numpy().flags.writeable and not np.shares_memory(x.numpy(), series[0])


def test_window_dataset_pickles_without_copying_every_window():
    # a DataLoader worker receives the dataset pickled: its tables (strided views) are made again there
    import pickle

    series = np.random.default_rng(1).normal(size=(20_000, 4)).astype(np.float32)
    w = sb.make_windows(series, 64, targets=series[:, :1], n_ahead=1, batch_size=256, shuffle=True, seed=0)
    ds = sbt.WindowDataset(w)
    x, y = ds.__getitems__([5, 0, 70]).gathered
    blob = pickle.dumps(ds)
    assert len(blob) < 3 * series.nbytes
    x2, y2 = pickle.loads(blob).__getitems__([5, 0, 70]).gathered
    assert torch.equal(x, x2) and torch.equal(y, y2)
