"""Out-of-core benchmark, run in its own process so that its peak resident memory is its own.

    python bench/ooc.py --gb 12 [--dir /tmp/statebatch-ooc] [--json out.json] [--repeat 3]

1. prepare: a float32 series of GB gigabytes x 8 features, generated lazily by dask.array in 128 MB
   blocks, written as .npy shards by Dask tasks (statebatch.dask.prepare);
2. arrange it in stateful lanes (timesteps 100, 64 lanes; the plan from the length alone) and read
   one epoch back batch by batch from the shards (``arranged.batches()``);
3. the same epoch in memory on a series that fits (1 GB), and out of core on that same 1 GB, for
   throughput.

Peak resident memory is measured per phase: on Linux the high-water mark (VmHWM) is reset before
each phase (``/proc/self/clear_refs``), so the out-of-core figure is that of arranging + the epoch
alone, not of preparing (Dask) before it; elsewhere the process-wide ``ru_maxrss`` is reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# --------------------------------------------------------------------------- resident memory per phase
def _status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the resident high-water mark (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss(resettable: bool) -> int:
    """Peak resident bytes since the last reset (or of the whole process when it cannot be reset)."""
    hwm = _status("VmHWM:") if resettable else None
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int | None:
    return _status("VmRSS:")


# --------------------------------------------------------------------------- one epoch
def epoch(arranged) -> tuple[float, int]:
    """Seconds and bytes of one epoch of batches, each a new contiguous array."""
    t0 = time.perf_counter()
    nbytes = 0
    for (xb,) in arranged.batches():
        nbytes += xb.nbytes
    return time.perf_counter() - t0, nbytes


def best_epoch(arranged, repeat: int) -> tuple[float, int]:
    best, nbytes = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        s, nbytes = epoch(arranged)
        best = min(best, s)
    return best, nbytes


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--gb", type=float, default=12.0)
    p.add_argument("--dir", default=None, help="work directory (removed afterwards unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the shards")
    p.add_argument("--json", default=None)
    p.add_argument("--in-memory-gb", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=3, help="epochs of the 1 GB comparisons (best is kept)")
    p.add_argument("--repeat-big", type=int, default=1, help="epochs of the big out-of-core series (best is kept)")
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
    resettable = reset_peak_rss()
    try:
        rng = da.random.default_rng(0)
        series = rng.standard_normal((steps, F), chunks=(block, F), dtype=np.float32)
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads", num_workers=2):
            store = prepare(series, work / "shards")
        prepare_s = time.perf_counter() - t0
        rss_prepare = peak_rss(resettable)

        # ---- the out-of-core phase: plan (from the length alone) + one epoch read from the shards
        gc.collect()
        resettable = reset_peak_rss()
        rss_before = current_rss()
        t0 = time.perf_counter()
        arranged = sb.arrange_stateful(store, T, B, targets=None)
        plan = arranged.plan()
        plan_s = time.perf_counter() - t0
        plan_bytes = sum(getattr(plan, k).nbytes for k in ("series", "step", "valid", "resets"))
        rss_after_plan = current_rss()
        ooc_s, ooc_bytes = best_epoch(arranged, args.repeat_big)
        rss_ooc = peak_rss(resettable)
        n_batches = arranged.n_batches
        del arranged, plan

        # ---- 1 GB: in memory, and the same data out of core
        gc.collect()
        resettable = reset_peak_rss()
        mem_steps = int(args.in_memory_gb * 2**30 / (4 * F))
        x = np.random.default_rng(0).standard_normal((mem_steps, F), dtype=np.float32)
        mem_arranged = sb.arrange_stateful(x, T, B, targets=None)
        mem_s, mem_bytes = best_epoch(mem_arranged, args.repeat)
        rss_mem = peak_rss(resettable)
        small = prepare(da.from_array(x, chunks=(block, F)), work / "small")
        ooc_small = sb.arrange_stateful(small, T, B, targets=None)
        ooc_small_s, small_bytes = best_epoch(ooc_small, args.repeat)
        assert small_bytes == mem_bytes, (small_bytes, mem_bytes)
        result = {
            "series_bytes": store.nbytes, "steps": steps, "features": F, "timesteps": T, "lanes": B,
            "shards": len(store.segments), "prepare_s": prepare_s, "plan_s": plan_s, "plan_bytes": plan_bytes,
            "epoch_s": ooc_s, "epoch_bytes": ooc_bytes, "epoch_gb_per_s": ooc_bytes / ooc_s / 2**30,
            "batches": n_batches,
            "rss_method": "VmHWM reset per phase" if resettable else "ru_maxrss (whole process)",
            "peak_rss_bytes_prepare": rss_prepare,
            "rss_bytes_before_ooc_phase": rss_before, "rss_bytes_after_plan": rss_after_plan,
            "peak_rss_bytes_ooc_phase": rss_ooc,
            "peak_rss_bytes_in_memory_phase": rss_mem,
            "in_memory_bytes": x.nbytes, "in_memory_epoch_s": mem_s, "in_memory_gb_per_s": mem_bytes / mem_s / 2**30,
            "ooc_same_size_epoch_s": ooc_small_s, "ooc_same_size_gb_per_s": mem_bytes / ooc_small_s / 2**30,
        }
        result["throughput_vs_in_memory"] = result["epoch_gb_per_s"] / result["in_memory_gb_per_s"]
        result["same_size_throughput_vs_in_memory"] = mem_s / ooc_small_s
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return result


if __name__ == "__main__":
    main()
