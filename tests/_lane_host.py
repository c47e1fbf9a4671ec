"""One 'host' of tests/test_lane_hosts.py: opens a prepared store, serves its own lanes, records reads.

``python tests/_lane_host.py STORE_DIR RANK OUT.npz``: arranges the stored series (8 lanes of 16 steps,
repacked every epoch), serves two epochs of rank RANK's block of lanes (of 2) through
``statebatch.torch.LaneLoader(num_replicas=2, rank=RANK)``, and saves every row range it read from
the store, the batches it served, and its peak resident memory.
"""

import resource
import sys

import numpy as np

import statebatch as sb
from statebatch.sources import npy as sb_store
from statebatch import torch as sbt

store_dir, rank, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
reads: list[tuple[int, int]] = []
for cls in (sb_store.ShardedStore,):  # every positioned read of the store, in its rows (shards: their own)
    for name in ("read", "read_into"):
        original = getattr(cls, name)

        def logged(self, start, stop, *args, _original=original):
            reads.append((int(start), int(stop)))
            return _original(self, start, stop, *args)

        setattr(cls, name, logged)

# the shards' checksums are verified by one sequential read of each shard per process (on by default);
# off here, so that the reads recorded are the loader's
stored = sb_store.open_prepared(store_dir, check_content=False)
arranged = sb.arrange_stateful(stored, timesteps=16, batch_size=8, shuffle=True, seed=3)
loader = sbt.LaneLoader(arranged, num_replicas=2, rank=rank)
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
served = {}
for epoch in range(2):
    reads_before = len(reads)
    for k, (x, _y, _w, _reset) in enumerate(loader):
        served[f"x{epoch}_{k}"] = x.numpy()
    served[f"reads{epoch}"] = np.array(reads[reads_before:], dtype=np.int64).reshape(-1, 2)
rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.savez(out, rss_growth_kb=rss_after - rss_before, **served)
