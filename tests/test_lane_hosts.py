"""Hosts that each read only their lanes: a store prepared once by ``statebatch.dask.prepare``, two
processes (one per replica) each opening it and serving their own block of lanes.

Each process (``tests/_lane_host.py``) records every row range it reads from the store. Checked: every
range lies inside the steps its own lanes hold in that epoch's plan (no row of the other replica's
lanes is read), the two processes' batches side by side are the whole batches of one process, and
their memory grows by a few batches' worth of read-ahead, not by the data.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import statebatch as sb
from statebatch.dask import prepare
from statebatch.sources.npy import open_prepared

ROOT = Path(__file__).resolve().parents[1]
HOST = Path(__file__).with_name("_lane_host.py")


def test_each_host_reads_only_its_own_lanes_rows(tmp_path):
    import dask.dataframe as dd

    rng = np.random.default_rng(0)
    lens = rng.integers(200, 900, size=24)
    frame = pd.DataFrame({"id": np.repeat([f"s{i:02d}" for i in range(24)], lens),
                          "t": np.concatenate([np.arange(n) for n in lens]),
                          "a": rng.normal(size=lens.sum()).astype("float32"),
                          "b": rng.normal(size=lens.sum()).astype("float32")})
    prepare(dd.from_pandas(frame, npartitions=4), tmp_path / "store", id_col="id", time_col="t", target_cols=["a"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    hosts = [subprocess.Popen([sys.executable, str(HOST), str(tmp_path / "store"), str(r), str(tmp_path / f"h{r}.npz")],
                              env=env) for r in (0, 1)]
    assert [h.wait(timeout=600) for h in hosts] == [0, 0]
    got = [np.load(tmp_path / f"h{r}.npz") for r in (0, 1)]

    arranged = sb.arrange_stateful(open_prepared(tmp_path / "store"), timesteps=16, batch_size=8, shuffle=True, seed=3)
    offsets = arranged._ss.offsets
    for epoch in range(2):
        plan = arranged.plan(epoch)
        for rank, host in enumerate(got):
            lanes = slice(4 * rank, 4 * rank + 4)
            # the store rows this rank's lanes hold in this epoch: one range per (batch, lane) chunk
            s, step, valid = plan.series[:, lanes], plan.step[:, lanes], plan.valid[:, lanes]
            real = (s >= 0) & (valid > 0)
            first = offsets[np.maximum(s, 0)] + step
            own = np.zeros(int(offsets[-1]) + 1, dtype=bool)
            for a, n in zip(first[real], valid[real]):
                own[a:a + n] = True
            # rows of the other replica's lanes
            s2, step2, valid2 = (plan.series[:, 4 - 4 * rank:8 - 4 * rank], plan.step[:, 4 - 4 * rank:8 - 4 * rank],
                                 plan.valid[:, 4 - 4 * rank:8 - 4 * rank])
            others = np.zeros_like(own)
            real2 = (s2 >= 0) & (valid2 > 0)
            for a, n in zip((offsets[np.maximum(s2, 0)] + step2)[real2], valid2[real2]):
                others[a:a + n] = True
            reads = host[f"reads{epoch}"]
            assert len(reads) > 0
            read_rows = np.zeros_like(own)
            for a, b in reads:
                read_rows[a:b] = True
            # it reads ahead only along its own lanes: never a row that only the other replica's lanes hold
            # (and in the first epoch, every row its lanes need; later epochs find some in its buffers)
            if epoch == 0:
                assert (read_rows | ~own).all()
            assert not (read_rows & others & ~own).any(), (epoch, rank)
        for k in range(plan.n_batches):
            whole = arranged.batch(k, epoch)[0]
            np.testing.assert_array_equal(np.concatenate([got[0][f"x{epoch}_{k}"], got[1][f"x{epoch}_{k}"]]), whole)
    # memory: read-ahead buffers of 4 lanes, not the data (24 series, ~12,000 rows x 2 features)
    for host in got:
        assert int(host["rss_growth_kb"]) < 64 * 1024
