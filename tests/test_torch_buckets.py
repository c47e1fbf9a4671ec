"""statebatch.torch bucketing (BatchSampler, collate, DDP split) and the window dataset."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader

import statebatch as sb
from statebatch import torch as sbt


def _sequences(n=40, lo=1, hi=50, features=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(k), features)).astype(np.float32) for k in rng.integers(lo, hi, n)]


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_packed_bucket_batches_equal_running_each_sequence_alone(padding):
    seqs = _sequences()
    targets = [s[:, :1] * 2 for s in seqs]
    bk = sb.bucket_batches(seqs, 8, targets=targets, return_sequences=True, seed=1, padding=padding, pad_value=9.0)
    ds = sbt.SequenceDataset(bk)
    loader = DataLoader(ds, batch_sampler=sbt.BucketBatchSampler(bk), collate_fn=ds.collate)
    gru = nn.GRU(2, 3, batch_first=True)
    seen = []
    with torch.no_grad():
        for b in loader:
            assert b.x.shape[:2] == b.mask.shape and b.weight.shape == b.mask.shape
            np.testing.assert_array_equal(b.mask.sum(1).numpy(), b.lengths.numpy())
            assert torch.all(b.x[~b.mask] == 9.0)
            if padding == "pre":  # pack_padded_sequence wants post-padding: move the steps to the front
                x = torch.stack([torch.cat([r[m], r[~m]]) for r, m in zip(b.x, b.mask)])
            else:
                x = b.x
            packed = pack_padded_sequence(x, b.lengths, batch_first=True, enforce_sorted=False)
            out, h = gru(packed)
            out, lens = pad_packed_sequence(out, batch_first=True)
            for row, i in enumerate(b.indices.tolist()):
                alone_out, alone_h = gru(torch.from_numpy(seqs[i])[None])
                n = len(seqs[i])
                torch.testing.assert_close(out[row, :n], alone_out[0], rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(h[0, row], alone_h[0, 0], rtol=1e-4, atol=1e-5)
                np.testing.assert_array_equal(b.y[row][b.mask[row]].numpy(), targets[i])
                seen.append(i)
    assert sorted(seen) == list(range(len(seqs)))


def test_per_sequence_targets_stack_and_set_epoch_reshuffles():
    seqs = _sequences(n=60)
    labels = np.arange(60) % 3
    bk = sb.bucket_batches(seqs, 8, targets=labels, seed=0)
    ds = sbt.SequenceDataset(bk)
    sampler = sbt.BucketBatchSampler(bk)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate)
    first = [b.indices.tolist() for b in loader]
    again = [b.indices.tolist() for b in loader]
    assert first == again  # the DistributedSampler convention: the same epoch until set_epoch
    sampler.set_epoch(1)
    second = [b.indices.tolist() for b in loader]
    assert first != second and sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(60))
    assert [list(map(int, b)) for b in bk.plan(1).batches] == second
    b = next(iter(loader))
    assert b.weight is None
    np.testing.assert_array_equal(b.y.numpy(), labels[b.indices.numpy()])


def test_sampler_from_lengths_and_its_errors():
    lengths = np.random.default_rng(0).integers(1, 100, 50)
    s = sbt.BucketBatchSampler(lengths, 8, seed=3, bin_width=0.1)
    assert sorted(i for b in s for i in b) == list(range(50))
    with pytest.raises(sb.ParameterError, match="seed"):
        sbt.BucketBatchSampler(lengths, 8, num_replicas=2, rank=0)
    with pytest.raises(sb.ParameterError, match="batch_size"):
        sbt.BucketBatchSampler(lengths)
    with pytest.raises(sb.ParameterError, match="rank"):
        sbt.BucketBatchSampler(lengths, 8, seed=0, num_replicas=2, rank=2)
    with pytest.raises(sb.ParameterError, match="planning option"):
        sbt.BucketBatchSampler(lengths, 8, seed=0, no_such_option=1)
    with pytest.raises(sb.ParameterError, match="replicas"):
        sbt.BucketBatchSampler([3, 4], 1, seed=0, num_replicas=3, rank=0).batches()
    # batches of one sequence cannot be split: the smallest are merged to give each rank as many
    merged = [sbt.BucketBatchSampler([5] * 7, 1, seed=0, num_replicas=3, rank=r).batches() for r in range(3)]
    assert [len(m) for m in merged] == [2, 2, 2] and sorted(np.concatenate(sum(merged, [])).tolist()) == list(range(7))
    bk = sb.bucket_batches(_sequences(n=5), 2, seed=0)
    with pytest.raises(sb.ParameterError, match="Bucketing"):
        sbt.BucketBatchSampler(bk, 4)


@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=120), batch_size=st.integers(1, 16),
       replicas=st.integers(1, 8), seed=st.integers(0, 2 ** 16), epoch=st.integers(0, 5),
       mode=st.sampled_from(["sort", "pool", "buckets", "exact"]))
def test_every_sequence_once_per_epoch_over_the_ranks_each_rank_the_same_number_of_distinct_batches(
        lengths, batch_size, replicas, seed, epoch, mode):
    n = len(lengths)
    samplers = [sbt.BucketBatchSampler(lengths, batch_size, seed=seed, num_replicas=replicas, rank=r, mode=mode)
                for r in range(replicas)]
    for s in samplers:
        s.set_epoch(epoch)
    if n < replicas:
        with pytest.raises(sb.ParameterError):
            samplers[0].batches()
        return
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1  # the same number of batches on every rank
    assert all(len(s) == len(b) for s, b in zip(samplers, per_rank))
    everything = [i for batches in per_rank for b in batches for i in b]
    assert sorted(everything) == list(range(n))  # every sequence exactly once, on exactly one rank
    # splitting keeps batches within batch_size; merging (too few sequences to split) at most doubles one
    limit = batch_size if n >= -(-len(sb.plan_buckets(lengths, batch_size, seed=seed, epoch=epoch, mode=mode,
                                                       boundaries=samplers[0]._kwargs.get("boundaries")).batches)
                                  // replicas) * replicas else 2 * batch_size
    assert all(1 <= len(b) <= limit for batches in per_rank for b in batches)


def test_window_dataset_items_and_loader():
    series = np.random.default_rng(0).standard_normal((100, 3)).astype(np.float32)
    w = sb.make_windows(series, 8, targets="next")
    ds = sbt.WindowDataset(w)
    assert len(ds) == w.n_windows
    x, y = ds[5]
    np.testing.assert_array_equal(x.numpy(), series[5:13])
    np.testing.assert_array_equal(y.numpy(), w.take([5])[1][0])
    before = series.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seen = []
        for xb, _yb in DataLoader(ds, batch_size=16, shuffle=True):
            xb.mul_(0)
            seen.append(len(xb))
    assert sum(seen) == w.n_windows
    np.testing.assert_array_equal(series, before)
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(sb.ParameterError):
        sbt.WindowDataset(series)
    items = ds.__getitems__([3, 0, -1])
    np.testing.assert_array_equal(items[2][0].numpy(), series[-9:-1])


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_batched_fetch_equals_padding_the_items_one_by_one(padding, return_sequences):
    seqs = _sequences(n=30)
    targets = [s[:, :1] for s in seqs] if return_sequences else np.arange(30.0)
    bk = sb.bucket_batches(seqs, 8, targets=targets, return_sequences=return_sequences, seed=0, padding=padding,
                           pad_value=-3.0)
    ds = sbt.SequenceDataset(bk)
    idx = [int(i) for i in bk.plan(0).batches[0]]
    fast = ds.collate(ds.__getitems__(idx))
    slow = ds.collate([ds[i] for i in idx])
    for a, b in zip(fast, slow):
        if a is None:
            assert b is None
        else:
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    plain = sbt.pad_collate(ds.__getitems__(idx), padding=padding, pad_value=0.0, per_step=return_sequences)
    assert torch.all(plain.x[~plain.mask] == 0)  # other padding asked for: padded again, not handed on
    with pytest.raises(IndexError):
        ds.__getitems__([0, 30])


def test_pad_collate_refuses_mixed_targets():
    items = [(torch.ones(3, 1), torch.ones(3, 1), 0), (torch.ones(2, 1), torch.ones(2, 1), 1)]
    with pytest.raises(sb.LengthMismatchError, match="per_step=True"):
        sbt.pad_collate(items)
    b = sbt.pad_collate(items, per_step=True, padding="pre", pad_value=-1.0)
    assert b.x[1, 0, 0] == -1 and b.mask.tolist() == [[True] * 3, [False, True, True]]
    with pytest.raises(sb.LengthMismatchError):
        sbt.pad_collate([(torch.ones(3, 1), None, 0), (torch.ones(2, 1), torch.ones(1), 1)])


_RANK_SCRIPT = r"""
import os, sys, json
import numpy as np, torch.distributed as dist
from statebatch import torch as sbt
import statebatch as sb
dist.init_process_group("gloo")
rank = dist.get_rank()
lengths = np.random.default_rng(0).integers(1, 40, 101)
seed = int(sys.argv[1]) + (rank if sys.argv[2] == "differ" else 0)
try:
    s = sbt.BucketBatchSampler(lengths, 8, seed=seed)  # num_replicas and rank from the process group
    s.set_epoch(2)
    print(json.dumps({"replicas": s.num_replicas, "rank": s.rank, "batches": list(s)}))
except sb.ParameterError as e:
    print(json.dumps({"error": str(e)}))
dist.destroy_process_group()
"""


@pytest.mark.parametrize("seeds", ["same", "differ"])
def test_ranks_of_a_real_process_group_split_the_epoch_and_refuse_different_plans(tmp_path, seeds):
    import json
    import os
    import pathlib
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    root = pathlib.Path(__file__).resolve().parents[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "PYTHONPATH": str(root), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "RANK": str(rank), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script), "5", seeds], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    if seeds == "differ":
        assert all("planned different batches" in o["error"] for o in outs)
        return
    assert [(o["replicas"], o["rank"]) for o in outs] == [(2, 0), (2, 1)]
    assert len(outs[0]["batches"]) == len(outs[1]["batches"])
    assert sorted(i for o in outs for b in o["batches"] for i in b) == list(range(101))


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_gathered_items_read_by_any_collate_are_the_unpadded_sequences(padding):
    import pickle

    from torch.nn.utils.rnn import pad_sequence
    from torch.utils.data import DataLoader

    seqs = _sequences(n=40)
    bk = sb.bucket_batches(seqs, 8, targets=np.arange(40.0), seed=0, padding=padding)
    ds = sbt.SequenceDataset(bk)
    idx = [int(i) for i in bk.plan(0).batches[0]]
    items = ds.__getitems__(idx)
    assert len(items) == len(idx) and bool(items)  # before the items are made
    for item, i in zip(items, idx):  # each item is sequence i, unpadded, with its target and index
        np.testing.assert_array_equal(item[0].numpy(), seqs[i])
        assert float(item[1]) == float(i) and item[2] == i
    assert items[-1][2] == idx[-1] and [it[2] for it in reversed(items)] == idx[::-1]
    again = pickle.loads(pickle.dumps(ds.__getitems__(idx)))  # a worker process may pickle them
    assert type(again) is list and [it[2] for it in again] == idx

    def my_collate(batch):  # a user's own collate: zip(*batch), as torch's default_collate does
        xs, ys, ids = zip(*batch)
        return pad_sequence(list(xs), batch_first=True), torch.stack(list(ys)), list(ids)

    seen = []
    for x, y, ids in DataLoader(ds, batch_sampler=sbt.BucketBatchSampler(bk), collate_fn=my_collate):
        assert x.shape[0] == len(ids) and y.tolist() == [float(i) for i in ids]
        seen += ids
    assert sorted(seen) == list(range(40))
