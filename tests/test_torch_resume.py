"""Resumable torch training (issue 22): ``state_dict``/``load_state_dict`` of LaneLoader, StateCarrier and the
samplers resume in the middle of an epoch exactly, and a real training process killed with SIGKILL resumes
with the same call to the same weights, optimizer state and lane states as an uninterrupted run.
"""

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader

import statebatch as sb
from statebatch import torch as sbt
from statebatch.results.feed import ResetRecorder
from statebatch.results.schedule import LaneSchedule, ValidationSchedule


def _series(n=9, lo=8, hi=50, features=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(k), features)).astype(np.float32) for k in rng.integers(lo, hi, n)]


def _through_torch_save(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # plain types and tensors only: loadable without trusting pickles


def _run(lstm, loader, carrier, epochs, stop=None):
    """(epoch, x, y, w, reset, output, state) of every batch until ``epochs``; ``stop`` = batches to serve."""
    seen = []
    with torch.no_grad():
        while loader.epoch < epochs:
            e = loader.epoch
            for b in loader:
                out, h = lstm(b.x, carrier(b.reset))
                carrier.update(h)
                seen.append((e, b, out, tuple(t.clone() for t in carrier.state)))
                if stop is not None and len(seen) == stop:
                    return seen
    return seen


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


@pytest.mark.parametrize("jitter,prefetch,cut", [(0, 0, 7), (3, 0, 19), (0, 2, 1), (3, 2, 7), (0, 0, "epoch_end"),
                                                (3, 0, "epoch_end")])
def test_loader_and_carrier_round_trip_mid_epoch_of_a_repacked_plan(jitter, prefetch, cut):
    series = _series()
    make = lambda: sb.arrange_stateful(series, 5, 4, shuffle=True, seed=3, jitter=jitter)  # noqa: E731
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 6, batch_first=True)
    whole = _run(lstm, sbt.LaneLoader(make(), prefetch=prefetch), sbt.StateCarrier(), 3)
    if cut == "epoch_end":
        cut = make().plan(0).n_batches  # the last batch of epoch 0: the state says (0, n_batches)
    assert cut < len(whole) - 5
    loader, carrier = sbt.LaneLoader(make(), prefetch=prefetch), sbt.StateCarrier()
    first = _run(lstm, loader, carrier, 3, stop=cut)
    saved = _through_torch_save({"loader": loader.state_dict(), "carrier": carrier.state_dict()})
    loader2, carrier2 = sbt.LaneLoader(make(), prefetch=prefetch), sbt.StateCarrier()  # a fresh process' objects
    loader2.load_state_dict(saved["loader"])
    carrier2.load_state_dict(saved["carrier"])
    rest = _run(lstm, loader2, carrier2, 3)
    assert len(first) + len(rest) == len(whole)
    for (e1, b1, o1, s1), (e2, b2, o2, s2) in zip(whole, first + rest):
        assert e1 == e2 and all(_same(t1, t2) for t1, t2 in zip(b1, b2))
        assert torch.equal(o1, o2) and all(torch.equal(a, b) for a, b in zip(s1, s2))
    # a resumed loop that calls set_epoch at its top keeps the resume point
    loader3 = sbt.LaneLoader(make(), prefetch=prefetch)
    loader3.load_state_dict(saved["loader"])
    loader3.set_epoch(saved["loader"]["epoch"])
    remainder = list(loader3)
    want = [b for e, b, _, _ in rest if e == saved["loader"]["epoch"]]
    assert len(remainder) == len(want)
    assert all(_same(t1, t2) for b1, b2 in zip(remainder, want) for t1, t2 in zip(b1, b2))


def test_a_stopped_pass_reports_the_batches_served_and_a_new_pass_restarts_the_epoch():
    arranged = sb.arrange_stateful(_series(), 5, 4, shuffle=True, seed=1)
    loader = sbt.LaneLoader(arranged)
    assert loader.state_dict()["epoch"] == 0 and loader.state_dict()["batch"] == 0
    for k, _ in enumerate(loader):
        if k == 2:
            break
    assert (loader.state_dict()["epoch"], loader.state_dict()["batch"]) == (0, 3)
    assert len(list(loader)) == arranged.plan(0).n_batches  # a new pass serves the whole epoch again
    assert (loader.state_dict()["epoch"], loader.state_dict()["batch"]) == (1, 0)


def test_validation_loader_resumes_with_its_own_resets():
    train, val = sb.arrange_stateful(_series(), 5, 4).split(0.3)
    whole = [b.reset.clone() for b in sbt.LaneLoader(val, validation=True)]
    loader = sbt.LaneLoader(val, validation=True)
    it = iter(loader)
    head = [next(it).reset.clone() for _ in range(2)]
    state = loader.state_dict()
    again = sbt.LaneLoader(val, validation=True)
    again.load_state_dict(state)
    rest = [b.reset.clone() for b in again]
    assert len(head) + len(rest) == len(whole)
    assert all(torch.equal(a, b) for a, b in zip(whole, head + rest))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), T=st.integers(2, 6), B=st.integers(1, 5), shuffle=st.booleans(),
       jitter=st.integers(0, 2), carry_on=st.booleans(), validation=st.booleans(), seed=st.integers(0, 99))
def test_reset_masks_equal_the_schedule_run_batch_by_batch(n, T, B, shuffle, jitter, carry_on, validation, seed):
    series = _series(n=n, lo=3, hi=30, seed=seed)
    jitter = min(jitter, T - 1)
    arranged = sb.arrange_stateful(series, T, B, shuffle=shuffle, seed=seed, jitter=jitter)
    loader = sbt.LaneLoader(arranged, validation=validation, reset_on_epoch_begin=not carry_on)
    for epoch in range(2):
        got = [b.reset.numpy().copy() for b in loader]
        rec = ResetRecorder(B)
        n_batches = arranged.plan(epoch).n_batches
        probe = sb.arrange_stateful(series, T, B, shuffle=shuffle, seed=seed, jitter=jitter)
        if validation:
            sched = ValidationSchedule(probe)
            sched.begin(rec)
        else:
            sched = LaneSchedule(probe, reset_on_epoch_begin=not carry_on)
            sched.epoch_begin(rec, epoch)
        probe.set_epoch(epoch)
        want = []
        for k in range(n_batches):
            sched.batch_begin(rec, k)
            want.append(rec.take())
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["one_series", "one_series_padded", "one_series_horizon_3", "one_series_own_targets",
                                  "one_series_no_targets", "one_lane", "many_shuffled", "no_targets", "many_to_one",
                                  "held_out"])
def test_batches_served_as_views_equal_the_arrangements_batches_and_stay_apart_from_later_epochs(kind):
    series = _series()
    long = np.random.default_rng(1).standard_normal((203, 2)).astype(np.float32)
    arranged = {
        "one_series": lambda: sb.arrange_stateful(series[0], 4, 3, tail="drop"),
        "one_series_padded": lambda: sb.arrange_stateful(long, 4, 3),
        "one_series_horizon_3": lambda: sb.arrange_stateful(long, 5, 4, horizon=3, tail="drop"),
        "one_series_own_targets": lambda: sb.arrange_stateful(long, 5, 4, targets=long[:, :1] * 2, tail="drop"),
        "one_series_no_targets": lambda: sb.arrange_stateful(long, 5, 4, targets=None, tail="drop"),
        "one_lane": lambda: sb.arrange_stateful(long, 5, 1, tail="drop"),
        "many_shuffled": lambda: sb.arrange_stateful(series, 4, 3, shuffle=True, seed=2),
        "no_targets": lambda: sb.arrange_stateful(series, 4, 3, targets=None),
        "many_to_one": lambda: sb.arrange_stateful(series, 4, 3, return_sequences=False),
        "held_out": lambda: sb.arrange_stateful(series, 4, 3).split(0.3)[1],
    }[kind]()
    before, long_before = [a.copy() for a in series], long.copy()
    loader = sbt.LaneLoader(arranged)
    for epoch in range(2):
        for k, b in enumerate(loader):
            want = arranged.batch(k, epoch)
            np.testing.assert_array_equal(b.x.numpy(), want[0])
            if len(want) > 1:
                np.testing.assert_array_equal(b.y.numpy(), want[1])
                np.testing.assert_array_equal(b.weight.numpy(), want[2])
            else:
                assert b.y is None
            b.x.mul_(0).add_(7)  # changed in place: must not reach the next epoch or the arrangement
            b.weight.zero_()
    np.testing.assert_array_equal(np.concatenate(series), np.concatenate(before))  # the user's data untouched
    np.testing.assert_array_equal(long, long_before)
    assert not np.any(arranged.batch(0, 0)[0] == 7)


# --------------------------------------------------------------------------- samplers
def _drain(loader, stop=None):
    out = []
    for b in loader:
        out.append(b)
        if stop is not None and len(out) == stop:
            break
    return out


def test_bucket_sampler_resumes_mid_epoch_through_a_dataloader():
    bucketing = sb.bucket_batches(_series(n=40), 4, seed=5)
    ds = sbt.SequenceDataset(bucketing)

    def run(sampler, epochs, stop=None, start=0):
        got = []
        for e in range(start, epochs):
            sampler.set_epoch(e)
            loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate)
            got += [(e, b.indices.tolist()) for b in _drain(loader, None if stop is None else stop - len(got))]
            if stop is not None and len(got) == stop:
                return got
        return got

    whole = run(sbt.BucketBatchSampler(bucketing), 2)
    sampler = sbt.BucketBatchSampler(bucketing)
    head = run(sampler, 2, stop=len(whole) // 2 + 1)
    state = _through_torch_save(sampler.state_dict())
    again = sbt.BucketBatchSampler(bucketing)
    again.load_state_dict(state)
    rest = run(again, 2, start=state["epoch"])
    assert head + rest == whole


def test_window_sampler_and_dataset_resume_mid_epoch_and_equal_the_windows_own_batches():
    w = sb.make_windows(_series(n=6, lo=20, hi=60), 6, targets="next", batch_size=16, shuffle=True, seed=4)
    ds = sbt.WindowDataset(w)
    sampler = sbt.WindowBatchSampler(w)
    whole = []
    for e in range(2):
        sampler.set_epoch(e)
        for k, (x, y) in enumerate(DataLoader(ds, batch_sampler=sampler)):
            X, Y = w.batch(k, e)
            np.testing.assert_array_equal(x.numpy(), X)
            np.testing.assert_array_equal(y.numpy(), Y)
            whole.append((e, x))
    sampler = sbt.WindowBatchSampler(w)
    head = [(0, x) for x, _ in _drain(DataLoader(ds, batch_sampler=sampler), 5)]
    state = _through_torch_save(sampler.state_dict())
    again = sbt.WindowBatchSampler(w)
    again.load_state_dict(state)
    rest = []
    for e in range(state["epoch"], 2):
        again.set_epoch(e)
        rest += [(e, x) for x, _ in DataLoader(ds, batch_sampler=again)]
    assert len(head) + len(rest) == len(whole)
    assert all(e1 == e2 and torch.equal(a, b) for (e1, a), (e2, b) in zip(whole, head + rest))


# --------------------------------------------------------------------------- the DataLoader path of windows
def test_default_collate_hands_on_the_gathered_windows_with_the_values_and_types_of_stacking():
    from torch.utils.data import default_collate

    w = sb.make_windows(_series(n=4, lo=30, hi=60), 7, targets="next")
    ds = sbt.WindowDataset(w)
    order = np.random.default_rng(0).permutation(len(ds)).tolist()
    got = list(DataLoader(ds, batch_size=32, sampler=order))
    stacked = list(DataLoader(ds, batch_size=32, sampler=order,
                              collate_fn=lambda items: default_collate([tuple(t) for t in items])))
    assert len(got) == len(stacked) == -(-len(ds) // 32)
    for k, (g, s) in enumerate(zip(got, stacked)):
        assert type(g) is type(s) is list and len(g) == len(s) == 2
        want = w.take(order[k * 32:(k + 1) * 32])
        for a, b, c in zip(g, s, want):
            assert a.dtype == b.dtype and torch.equal(a, b)
            np.testing.assert_array_equal(a.numpy(), c)
    items = ds.__getitems__([3, 1])
    assert isinstance(items[0], tuple) and len(items) == 2 and torch.equal(items[1][0], ds[1][0])
    assert [tuple(t.shape) for t in items[0]] == [tuple(t.shape) for t in ds[3]]
    # a collate of its own sees the windows one by one
    firsts = list(DataLoader(ds, batch_size=4, collate_fn=lambda items: [it[0][0, 0].item() for it in items]))[0]
    np.testing.assert_allclose(firsts, [w.take([i])[0][0, 0, 0] for i in range(4)])


def test_gathered_windows_cross_a_worker_process():
    w = sb.make_windows(_series(n=2, lo=30, hi=40), 5, targets="next")
    ds = sbt.WindowDataset(w)
    order = list(range(len(ds)))[::-1]
    got = list(DataLoader(ds, batch_size=8, sampler=order, num_workers=1))
    np.testing.assert_array_equal(torch.cat([g[0] for g in got]).numpy(), w.take(order)[0])


# --------------------------------------------------------------------------- a real process, killed and resumed
SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import numpy as np, torch
    from torch import nn
    import statebatch as sb
    from statebatch import torch as sbt

    ckpt, out = sys.argv[1], sys.argv[2]
    kill_after, kill_mode = int(os.environ.get("SB_KILL_AFTER", "-1")), os.environ.get("SB_KILL_MODE", "after_save")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    series = [rng.standard_normal((int(n), 3)).astype(np.float32) for n in rng.integers(10, 40, 9)]
    arranged = sb.arrange_stateful(series, 5, 4, shuffle=True, seed=7, jitter=2)
    lstm, head = nn.LSTM(3, 8, batch_first=True), nn.Linear(8, 3)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-2)
    loader, carrier = sbt.LaneLoader(arranged), sbt.StateCarrier()
    step = 0
    if os.path.exists(ckpt):
        c = torch.load(ckpt, weights_only=True)
        lstm.load_state_dict(c["lstm"]); head.load_state_dict(c["head"]); opt.load_state_dict(c["opt"])
        loader.load_state_dict(c["loader"]); carrier.load_state_dict(c["carrier"]); step = c["step"]
    while loader.epoch < 3:
        for x, y, w, reset in loader:
            out_, state = lstm(x, carrier(reset))
            carrier.update(state)
            loss = (((head(out_) - y) ** 2).mean(-1) * w).sum() / w.sum().clamp(min=1)
            opt.zero_grad(); loss.backward(); opt.step()
            step += 1
            tmp = ckpt + ".tmp"
            torch.save({"lstm": lstm.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(),
                        "loader": loader.state_dict(), "carrier": carrier.state_dict(), "step": step}, tmp)
            if step == kill_after and kill_mode == "during_save":  # torn: written, not yet in place
                os.kill(os.getpid(), signal.SIGKILL)
            os.replace(tmp, ckpt)
            if step == kill_after and kill_mode == "after_save":
                os.kill(os.getpid(), signal.SIGKILL)
    torch.save({"lstm": lstm.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(),
                "carrier": carrier.state_dict(), "step": step}, out)
''')


def test_training_killed_with_sigkill_resumes_to_the_uninterrupted_weights_optimizer_and_lane_states(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}

    def run(ckpt, out, **kill):
        e = {**env, **{"SB_" + k.upper(): str(v) for k, v in kill.items()}}
        return subprocess.run([sys.executable, str(script), str(ckpt), str(out)], env=e, capture_output=True,
                              text=True, timeout=300)

    # the uninterrupted run: the same script in this process (one interpreter start less)
    import runpy

    argv, threads = sys.argv, torch.get_num_threads()
    try:
        sys.argv = [str(script), str(tmp_path / "ref.ckpt"), str(tmp_path / "ref.pt")]
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)
    reference = torch.load(tmp_path / "ref.pt", weights_only=True)
    total = reference["step"]
    rng = np.random.default_rng()
    first, second = sorted(rng.choice(np.arange(2, total - 2), 2, replace=False).tolist())
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "run.pt"
    killed = run(ckpt, out, kill_after=first, kill_mode="after_save")
    assert killed.returncode == -9, (first, killed.stderr[-2000:])  # a real SIGKILL: no cleanup ran
    assert torch.load(ckpt, weights_only=True)["step"] == first and not out.exists()
    torn = run(ckpt, out, kill_after=second, kill_mode="during_save")  # the same call resumes, then dies mid-save
    assert torn.returncode == -9, (second, torn.stderr[-2000:])
    assert torch.load(ckpt, weights_only=True)["step"] == second - 1  # the torn save never replaced the checkpoint
    done = run(ckpt, out)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = torch.load(out, weights_only=True)
    assert resumed["step"] == total, (first, second)

    def flat(d, prefix=""):
        if isinstance(d, torch.Tensor):
            yield prefix, d
        elif isinstance(d, dict):
            for k, v in d.items():
                yield from flat(v, f"{prefix}/{k}")
        elif isinstance(d, (list, tuple)):
            for i, v in enumerate(d):
                yield from flat(v, f"{prefix}/{i}")

    a, b = dict(flat(reference)), dict(flat(resumed))
    assert a.keys() == b.keys() and any("/opt/state" in k for k in a) and any("/carrier/state" in k for k in a)
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert worst <= 1e-6, (first, second, worst)
    assert reference["opt"]["param_groups"] == resumed["opt"]["param_groups"]
