"""statebatch benchmarks: side by side with the peer, in one run. Prints a table, writes JSON.

    python bench/run.py [--quick] [--only windows,arrange_one_series,...] [--out bench/results/latest.json]

Every record: workload, statebatch_s, peer, peer_s, ratio (= peer_s / statebatch_s, higher is better
for statebatch), floor_s (the plainest numpy doing the same work) and extra figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import statebatch as sb  # noqa: E402


def timeit(fn, repeat=3):
    """Best wall time of ``repeat`` runs (the least disturbed by the machine)."""
    best = float("inf")
    out = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def record(workload, sb_s, peer, peer_s, floor_s=None, **extra):
    return {"workload": workload, "statebatch_s": sb_s, "peer": peer, "peer_s": peer_s,
            "ratio": (peer_s / sb_s) if (peer_s and sb_s) else None, "floor_s": floor_s,
            "statebatch_vs_floor": (sb_s / floor_s) if floor_s else None, **extra}


# --------------------------------------------------------------------------- workloads
def _windows_epoch(quick, shuffle):
    """One epoch of windows (1M steps x 8, T=64, batch 256), every batch a contiguous array."""
    steps = 200_000 if quick else 1_000_000
    F, T, B = 8, 64, 256
    data = np.random.default_rng(0).standard_normal((steps, F)).astype(np.float32)

    def statebatch_epoch():
        w = sb.make_windows(data, T)
        return sum(len(xb) for (xb,) in w.batches(B, shuffle=shuffle, seed=1))

    def floor_epoch():  # the plainest numpy: a sliding_window_view sliced (or gathered) and copied per batch
        view = np.lib.stride_tricks.sliding_window_view(data, T, axis=0).transpose(0, 2, 1)
        if not shuffle:
            return sum(len(np.ascontiguousarray(view[lo: lo + B])) for lo in range(0, len(view), B))
        order = np.random.default_rng(1).permutation(len(view))
        return sum(len(view[order[lo: lo + B]]) for lo in range(0, len(view), B))

    def keras_epoch():
        import keras

        ds = keras.utils.timeseries_dataset_from_array(data, None, sequence_length=T, batch_size=B, shuffle=shuffle,
                                                       seed=1)
        return sum(len(np.asarray(xb)) for xb in ds)

    sb_s, n_sb = timeit(statebatch_epoch)
    floor_s, n_floor = timeit(floor_epoch)
    peer_s, n_peer = timeit(keras_epoch, repeat=1)
    assert n_sb == n_floor == n_peer, (n_sb, n_floor, n_peer)
    return record("windows_shuffled" if shuffle else "windows",
                  sb_s, f"keras.utils.timeseries_dataset_from_array(shuffle={shuffle})", peer_s, floor_s,
                  windows=n_sb, steps=steps, features=F, timesteps=T, batch_size=B)


def bench_windows(quick):
    return _windows_epoch(quick, shuffle=False)


def bench_windows_shuffled(quick):
    return _windows_epoch(quick, shuffle=True)


def bench_windows_memory(quick):
    """Peak memory make_windows adds on a 1 GB series (256 MB with --quick)."""
    nbytes = (256 if quick else 1024) * 2**20
    F = 8
    data = np.ones((nbytes // (4 * F), F), dtype=np.float32)
    tracemalloc.start()
    t0 = time.perf_counter()
    w = sb.make_windows(data, 64, targets="next")
    X, y = w.X, w.y
    first = w.take(slice(0, 256))
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del X, y, first
    return record("windows_memory", elapsed, "series size", None, None, series_bytes=data.nbytes,
                  peak_added_bytes=peak, peak_added_fraction_of_series=peak / data.nbytes)


def bench_arrange_one_series(quick):
    steps = 2_000_000 if quick else 10_000_000
    F, T, B = 8, 100, 64
    data = np.random.default_rng(0).standard_normal((steps, F)).astype(np.float32)

    def arrange():
        a = sb.arrange_stateful(data, T, B, targets=None)
        return a.X

    def memcpy():
        return data.copy()

    def arrange_view():
        return sb.arrange_stateful(data, T, B, targets=None, remainder="drop").batches

    sb_s, X = timeit(arrange)
    peer_s, _ = timeit(memcpy)
    view_s, v = timeit(arrange_view)
    assert X.shape[0] * T >= steps
    rec = record("arrange_one_series", sb_s, "one memcpy of the series (np.copy)", peer_s, peer_s,
                 steps=steps, features=F, timesteps=T, lanes=B, zero_copy_view_s=view_s,
                 zero_copy_shares_memory=bool(np.shares_memory(v, data)))
    return rec


def bench_pack_many_series(quick):
    n_series = 2_000 if quick else 10_000
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(300), 0.8, n_series).astype(int), 20, 5000)
    F, T, B = 8, 50, 64
    series = [rng.standard_normal((n, F)).astype(np.float32) for n in lengths]

    def arrange():
        a = sb.arrange_stateful(series, T, B, targets=None)
        a.X  # noqa: B018  materialise
        return a

    def concat():
        return np.concatenate(series)

    sb_s, a = timeit(arrange)
    floor_s, _ = timeit(concat)
    plan_s, _ = timeit(lambda: sb.arrange_stateful(series, T, B, targets=None).plan)
    bound = a.lower_bound_batches
    chunks = int((a.plan.valid > 0).sum())
    return record("pack_many_series", sb_s, "np.concatenate of all series (one copy)", floor_s, floor_s,
                  series=n_series, steps=int(lengths.sum()), timesteps=T, lanes=B, plan_only_s=plan_s,
                  batches=a.n_batches, lower_bound_batches=bound, excess_over_bound=a.n_batches / bound - 1,
                  padding_fraction=a.padding_fraction,
                  padding_fraction_at_bound=1 - lengths.sum() / (bound * B * T), chunks=chunks)


def bench_pydataset_overhead(quick):
    from statebatch.keras import StatefulDataset

    steps = 500_000 if quick else 2_000_000
    F, T, B = 8, 100, 64
    data = np.random.default_rng(0).standard_normal((steps, F)).astype(np.float32)
    a = sb.arrange_stateful(data, T, B)
    X, y, w = a.X, a.y, a.sample_weight  # materialised arrays: the numpy baseline slices them

    def numpy_slices():
        for k in range(a.n_batches):
            sl = slice(k * B, (k + 1) * B)
            _ = (X[sl], y[sl], w[sl])
        return a.n_batches

    ds_mat = StatefulDataset(a)  # X already materialised: batches are slices

    def dataset_materialised():
        for k in range(len(ds_mat)):
            ds_mat[k]
        ds_mat.on_epoch_end()
        return len(ds_mat)

    fresh = sb.arrange_stateful(data, T, B)
    ds_lazy = StatefulDataset(fresh)  # nothing materialised: each batch gathered on request

    def dataset_lazy():
        for k in range(len(ds_lazy)):
            ds_lazy[k]
        ds_lazy.on_epoch_end()
        return len(ds_lazy)

    np_s, nb = timeit(numpy_slices)
    mat_s, _ = timeit(dataset_materialised)
    lazy_s, _ = timeit(dataset_lazy)
    return record("pydataset_overhead", mat_s, "slicing numpy arrays", np_s, np_s, batches=nb,
                  per_batch_us_dataset=mat_s / nb * 1e6, per_batch_us_numpy=np_s / nb * 1e6,
                  per_batch_us_dataset_lazy_gather=lazy_s / nb * 1e6,
                  per_batch_overhead_us=(mat_s - np_s) / nb * 1e6)


def bench_bucketing(quick):
    """One shuffled epoch of padded batches of variable-length sequences vs tf.data bucketing."""
    import tensorflow as tf

    from statebatch.bucketing import _sorted_padding

    n = 10_000 if quick else 50_000
    F, B = 16, 64
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(100), 0.6, n).astype(np.int64), 1, 1000)
    seqs = [rng.standard_normal((int(k), F)).astype(np.float32) for k in lengths]
    quantiles = np.unique(np.quantile(lengths, np.linspace(0, 1, 11)[1:-1]).astype(np.int64))

    t0 = time.perf_counter()
    bk = sb.bucket_batches(seqs, B, seed=0)
    setup_s = time.perf_counter() - t0

    def statebatch_epoch():
        real = padded = 0
        for X, in bk:
            padded += X.shape[0] * X.shape[1]
        real = int(lengths.sum())
        return 1 - real / padded

    def tf_epoch(epoch=[0]):  # noqa: B006  a new shuffle each call
        order = np.random.default_rng(epoch[0]).permutation(n)
        epoch[0] += 1

        def gen():
            for i in order:
                yield seqs[i], lengths[i]

        ds = tf.data.Dataset.from_generator(
            gen, output_signature=(tf.TensorSpec((None, F), tf.float32), tf.TensorSpec((), tf.int64)))
        ds = ds.bucket_by_sequence_length(lambda x, k: tf.cast(k, tf.int32), bucket_boundaries=quantiles.tolist(),
                                          bucket_batch_sizes=[B] * (len(quantiles) + 1))
        real = padded = 0
        for X, k in ds:
            X = X.numpy()
            padded += X.shape[0] * X.shape[1]
            real += int(k.numpy().sum())
        return 1 - real / padded

    sb_s, sb_pad = timeit(statebatch_epoch)
    peer_s, tf_pad = timeit(tf_epoch, repeat=1)
    bq = sb.bucket_batches(seqs, B, mode="buckets", boundaries=quantiles, seed=0)
    dp = sb.bucket_batches(seqs, B, mode="buckets", n_buckets=len(quantiles) + 1, seed=0)
    return record("bucketing", sb_s, "tf.data.Dataset.bucket_by_sequence_length (10 quantile buckets, generator)",
                  peer_s, None, sequences=n, features=F, batch_size=B, setup_s=setup_s,
                  pool_batches_chosen=bk._auto_pool, padding_statebatch=sb_pad, padding_tf=tf_pad,
                  padding_sorted_no_shuffle=_sorted_padding(lengths, B),
                  padding_statebatch_same_quantile_buckets=bq.padding_fraction(),
                  padding_statebatch_dp_buckets=dp.padding_fraction())


def bench_out_of_core(quick):
    """bench/ooc.py in its own process: prepare (Dask tasks) + one epoch of lanes from disk, peak RSS."""
    import subprocess
    import tempfile

    gb = 1 if quick else 12
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ooc.json"
        subprocess.run([sys.executable, str(Path(__file__).with_name("ooc.py")), "--gb", str(gb), "--json", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
        r = json.loads(out.read_text())
    return record("out_of_core", r["epoch_s"], f"in-memory path ({r['in_memory_bytes'] / 2**30:.0f} GB) GB/s",
                  None, None, series_gb=r["series_bytes"] / 2**30, prepare_s=r["prepare_s"],
                  epoch_gb_per_s=r["epoch_gb_per_s"], in_memory_gb_per_s=r["in_memory_gb_per_s"],
                  ooc_same_size_gb_per_s=r["ooc_same_size_gb_per_s"],
                  throughput_vs_in_memory=r["epoch_gb_per_s"] / r["in_memory_gb_per_s"],
                  peak_rss_gb=r["peak_rss_bytes_ooc_phase"] / 2**30, batches=r["batches"])


def bench_plan_from_lengths(quick):
    """The lane plan of ~1 billion steps in 1M series (100k series with --quick), from lengths alone."""
    n = 100_000 if quick else 1_000_000
    lengths = np.clip(np.random.default_rng(0).lognormal(np.log(700), 0.8, n).astype(np.int64), 10, 20_000)
    plan_s, plan = timeit(lambda: sb.plan_lanes(lengths, 100, 256, horizon=1), repeat=1)
    plan_bytes = sum(getattr(plan, k).nbytes for k in ("series", "step", "valid", "resets"))
    return record("plan_from_lengths", plan_s, None, None, None, series=n, steps=int(lengths.sum()),
                  batches=plan.n_batches, plan_bytes=plan_bytes,
                  data_bytes_float32_8_features=int(lengths.sum()) * 32)


WORKLOADS = {
    "windows": bench_windows,
    "windows_shuffled": bench_windows_shuffled,
    "windows_memory": bench_windows_memory,
    "arrange_one_series": bench_arrange_one_series,
    "pack_many_series": bench_pack_many_series,
    "pydataset_overhead": bench_pydataset_overhead,
    "bucketing": bench_bucketing,
    "out_of_core": bench_out_of_core,
    "plan_from_lengths": bench_plan_from_lengths,
}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (CI-friendly)")
    parser.add_argument("--only", default=None, help="comma-separated workloads")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "latest.json"))
    args = parser.parse_args(argv)
    names = list(WORKLOADS) if not args.only else args.only.split(",")
    records = []
    for name in names:
        print(f"running {name} ...", flush=True)
        rec = WORKLOADS[name](args.quick)
        rec["quick"] = args.quick
        records.append(rec)
    cols = ["workload", "statebatch_s", "peer_s", "ratio", "floor_s", "statebatch_vs_floor"]
    print()
    print(" | ".join(f"{c:>20}" for c in cols))
    print("-" * (23 * len(cols)))
    for r in records:
        print(" | ".join(f"{fmt(r.get(c)):>20}" for c in cols))
    print()
    for r in records:
        extra = {k: v for k, v in r.items() if k not in cols and k != "quick"}
        print(f"{r['workload']}: " + ", ".join(f"{k}={fmt(v)}" for k, v in extra.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "numpy": np.__version__}
    out.write_text(json.dumps(records, indent=2, default=float))
    out.with_name("meta.json").write_text(json.dumps(meta, indent=2))
    print(f"\nwrote {out}")
    return records


if __name__ == "__main__":
    main()
