"""statebatch.torch under DistributedDataParallel: lanes sharded over real gloo processes.

Two and four processes (``torch.multiprocessing.spawn``, the gloo backend on CPU) each build the same
arrangement (12 real-valued series of different lengths in 8 lanes, repacked every epoch) and a
``LaneLoader`` whose ``num_replicas``/``rank`` come from the process group: every rank serves every
batch but only its own 8 / R lanes, and its ``StateCarrier`` keeps their states.

- Forward: the ranks' outputs side by side (gathered) equal, per series, the same LSTM run on that
  series alone, in epochs 0 and 1.
- Training: one epoch under DDP (each rank's loss ``R * sum(w * err) / global sum(w)``, DDP averages
  the gradients) ends with the weights of the same epoch trained on one process on whole batches.
"""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import statebatch as sb
from statebatch import torch as sbt
from statebatch.errors import ParameterError

B, T = 8, 6


def _series():
    rng = np.random.default_rng(5)
    return [np.cumsum(rng.normal(size=(int(n), 2)), axis=0).astype(np.float32) for n in rng.integers(15, 60, 12)]


def _model():
    torch.manual_seed(0)
    return nn.LSTM(2, 5, batch_first=True), nn.Linear(5, 2)


def _epoch(arranged, lstm, head, loader, carrier, opt=None, world=1):
    outs = []
    for x, y, w, reset in loader:
        out, state = lstm(x, carrier(reset))
        carrier.update(state)
        pred = head(out)
        outs.append(pred.detach())
        if opt is not None:
            total = w.sum()
            if world > 1:
                dist.all_reduce(total)
            loss = (((pred - y) ** 2).mean(-1) * w).sum() * world / total
            opt.zero_grad()
            loss.backward()
            opt.step()
    return outs


def _worker(rank, world, init, out_path):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        series = _series()
        arranged = sb.arrange_stateful(series, timesteps=T, batch_size=B, shuffle=True, seed=2)
        loader = sbt.LaneLoader(arranged)  # num_replicas, rank: from the process group
        assert (loader.num_replicas, loader.rank, loader.lanes) == (world, rank, B // world)
        lstm, head = _model()
        result = {}
        with torch.no_grad():
            for epoch in (0, 1):
                carrier = sbt.StateCarrier()
                outs = _epoch(arranged, lstm, head, loader, carrier)
                gathered = []
                for o in outs:
                    parts = [torch.zeros_like(o) for _ in range(world)]
                    dist.all_gather(parts, o)
                    gathered.append(torch.cat(parts).numpy())
                result[f"outputs{epoch}"] = gathered
        # training: DDP over the two ranks' lanes
        lstm_ddp = nn.parallel.DistributedDataParallel(lstm)
        head_ddp = nn.parallel.DistributedDataParallel(head)
        opt = torch.optim.SGD([*lstm_ddp.parameters(), *head_ddp.parameters()], lr=0.1)
        arranged.set_epoch(0)
        _epoch(arranged, lstm_ddp, head_ddp, sbt.LaneLoader(arranged), sbt.StateCarrier(), opt, world)
        result["weights"] = [p.detach().numpy().copy() for p in [*lstm.parameters(), *head.parameters()]]
        if rank == 0:
            np.save(out_path, np.array(result, dtype=object), allow_pickle=True)
        # DDP's reducer holds the process group: free it, and let every rank finish its collectives
        # before any rank tears the group down (a rank that leaves early aborts the others' gloo threads)
        del lstm_ddp, head_ddp
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 4])
def test_lanes_sharded_over_gloo_ranks_equal_one_process(tmp_path, world):
    out = tmp_path / "rank0.npy"
    mp.spawn(_worker, args=(world, f"file://{tmp_path / 'rendezvous'}", str(out)), nprocs=world, join=True)
    got = np.load(out, allow_pickle=True).item()
    series = _series()
    arranged = sb.arrange_stateful(series, timesteps=T, batch_size=B, shuffle=True, seed=2)
    lstm, head = _model()
    with torch.no_grad():
        for epoch in (0, 1):
            arranged.set_epoch(epoch)
            per_series = arranged.unbatch(got[f"outputs{epoch}"])
            for s, o in zip(series, per_series):
                alone = head(lstm(torch.from_numpy(s[None, :len(o)]))[0])[0].numpy()
                assert np.abs(alone - o).max() <= 1e-5, epoch
    # one process, whole batches, the same epoch of training
    opt = torch.optim.SGD([*lstm.parameters(), *head.parameters()], lr=0.1)
    arranged.set_epoch(0)
    _epoch(arranged, lstm, head, sbt.LaneLoader(arranged), sbt.StateCarrier(), opt)
    single = [p.detach().numpy() for p in [*lstm.parameters(), *head.parameters()]]
    assert max(float(np.abs(a - b).max()) for a, b in zip(got["weights"], single)) <= 1e-5


def test_lane_loader_replica_arguments_are_checked():
    arranged = sb.arrange_stateful(_series(), timesteps=T, batch_size=B)
    with pytest.raises(ParameterError, match="rank=2 is outside"):
        sbt.LaneLoader(arranged, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="divisible by 3"):
        sbt.LaneLoader(arranged, num_replicas=3, rank=0)
    halves = [list(sbt.LaneLoader(sb.arrange_stateful(_series(), timesteps=T, batch_size=B), num_replicas=2, rank=r))
              for r in (0, 1)]
    whole = list(sbt.LaneLoader(arranged))
    for a, b, full in zip(*halves, whole):
        for part_a, part_b, part_full in zip(a, b, full):
            assert torch.equal(torch.cat([part_a, part_b]), part_full)
    state = sbt.LaneLoader(arranged, num_replicas=2, rank=1).state_dict()
    with pytest.raises(ParameterError, match="rank"):
        sbt.LaneLoader(arranged, num_replicas=2, rank=0).load_state_dict(state)
