"""Out-of-core benchmark, run in its own process so that its peak resident memory is its own.

    python bench/ooc.py --gb 12 [--dir /tmp/statebatch-ooc] [--json out.json]

1. prepare: a float32 series of GB gigabytes x 8 features, generated lazily by dask.array in 128 MB
   blocks, written as .npy shards by Dask tasks (statebatch.dask.prepare);
2. iterate one epoch of stateful lanes (timesteps 100, 64 lanes) read batch by batch from the shards;
3. the same epoch in memory on a series that fits (1 GB), for throughput;
reports times, GB/s and the peak resident memory of this process (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def epoch(arranged) -> tuple[float, int]:
    t0 = time.perf_counter()
    nbytes = 0
    for k in range(arranged.n_batches):
        (xb,) = arranged.batch(k)
        nbytes += xb.nbytes
    return time.perf_counter() - t0, nbytes


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--gb", type=float, default=12.0)
    p.add_argument("--dir", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--in-memory-gb", type=float, default=1.0)
    args = p.parse_args(argv)

    import dask
    import dask.array as da

    import statebatch as sb
    from statebatch.dask import prepare

    F, T, B = 8, 100, 64
    steps = int(args.gb * 2**30 / (4 * F))
    block = 4 * 2**20  # rows per block: 128 MB
    work = Path(args.dir or tempfile.mkdtemp(prefix="statebatch-ooc-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rng = da.random.default_rng(0)
        series = rng.standard_normal((steps, F), chunks=(block, F), dtype=np.float32)
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads", num_workers=2):
            store = prepare(series, work / "shards")
        prepare_s = time.perf_counter() - t0
        arranged = sb.arrange_stateful(store, T, B, targets=None)
        ooc_s, ooc_bytes = epoch(arranged)
        rss_after_ooc = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

        mem_steps = int(args.in_memory_gb * 2**30 / (4 * F))
        x = np.random.default_rng(0).standard_normal((mem_steps, F), dtype=np.float32)
        mem_arranged = sb.arrange_stateful(x, T, B, targets=None)
        mem_s, mem_bytes = epoch(mem_arranged)
        ooc_small = sb.arrange_stateful(prepare(da.from_array(x, chunks=(block, F)), work / "small"), T, B,
                                        targets=None)
        ooc_small_s, _ = epoch(ooc_small)
        result = {
            "series_bytes": store.nbytes, "steps": steps, "features": F, "timesteps": T, "lanes": B,
            "shards": len(store.segments), "prepare_s": prepare_s, "epoch_s": ooc_s,
            "epoch_gb_per_s": ooc_bytes / ooc_s / 2**30, "batches": arranged.n_batches,
            "peak_rss_bytes_ooc_phase": rss_after_ooc,
            "in_memory_bytes": x.nbytes, "in_memory_epoch_s": mem_s, "in_memory_gb_per_s": mem_bytes / mem_s / 2**30,
            "ooc_same_size_epoch_s": ooc_small_s, "ooc_same_size_gb_per_s": mem_bytes / ooc_small_s / 2**30,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return result


if __name__ == "__main__":
    main()
