"""Forecasting windows through ``torch.utils.data`` against statebatch's own batches (bench/run.py's
``torch_forecast_dataloader`` workload; issue 24: "torch at statebatch's speed").

The frame of ``forecast_windows`` (bench/forecast_peers.py: 2,000 series x 500 steps, target, two known-future
covariates, one static categorical; 200 series with ``--quick``), T=48, one step ahead, batch 256, one shuffled
epoch of ``ForecastBatch`` named tuples of tensors, three ways:

- ``own``: ``for b in w.batches(): statebatch.torch.forecast_batch(b)`` (statebatch's own batches);
- ``natural``: ``DataLoader(WindowDataset(w), batch_size=256, shuffle=True)`` (torch's RandomSampler hands out
  one index per window; ``__getitems__`` gathers the batch once, ``default_collate`` passes it on);
- ``batch_sampler``: ``DataLoader(WindowDataset(w), batch_sampler=WindowBatchSampler(w))`` (one index array
  per batch, the windows' own plan).

Medians of interleaved rounds (each round runs every path once, so load from other work falls on all alike), of
wall time and of process CPU time.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["bench_torch_forecast_dataloader"]


def _median_times(fns: dict[str, Callable[[], int]], repeat: int) -> dict[str, float]:
    """Median wall time (``name``) and process CPU time (``name_cpu``, which load from other work on a shared
    machine moves less) of each function over ``repeat`` interleaved rounds."""
    times: dict[str, list[float]] = {k: [] for name in fns for k in (name, f"{name}_cpu")}
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            times[f"{name}_cpu"].append(time.process_time() - c0)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def bench_torch_forecast_dataloader(quick: bool, n_series: int | None = None,
                                    repeat: int | None = None) -> dict[str, Any]:
    """One shuffled epoch of forecasting batches: the two DataLoader forms against statebatch's own batches.

    Parameters
    ----------
    quick : bool
        200 series instead of 2,000, 3 rounds instead of 5.
    n_series : int, optional
        Series in the frame (overrides ``quick``'s choice; ``--forecast-series``).
    repeat : int, optional
        Interleaved rounds timed (overrides ``quick``'s choice).

    Returns
    -------
    dict
        A bench/run.py record: ``statebatch_s`` the natural call's epoch, ``peer_s`` statebatch's own batches
        (``ratio`` = own / natural: 1 is "as fast"), ``batch_sampler_s``, ``natural_vs_own`` and
        ``batch_sampler_vs_own`` (the issue asks for <= 1.3), ``torch_loader_floor_s`` (the natural call over a
        dataset that does no work: torch's sampler, batch sampler and fetch loop) with
        ``natural_beyond_torch_vs_own`` = (natural - floor) / own, and the same in process CPU time (``*_cpu``);
        ``dataset_loop_vs_own_cpu`` (the dataset's work without the DataLoader) and what the DataLoader adds
        around it (``dataloader_beyond_dataset_vs_own_cpu``, of which ``record_function_vs_own_cpu``).

    Examples
    --------
    >>> r = bench_torch_forecast_dataloader(True, n_series=3, repeat=1)
    >>> r["workload"], r["windows"], sorted(k for k in r if "_vs_own" in k)  # doctest: +NORMALIZE_WHITESPACE
    ('torch_forecast_dataloader', 1356,
     ['batch_sampler_beyond_torch_vs_own', 'batch_sampler_beyond_torch_vs_own_cpu', 'batch_sampler_vs_own',
      'batch_sampler_vs_own_cpu', 'dataloader_beyond_dataset_vs_own_cpu', 'dataset_loop_vs_own_cpu',
      'natural_beyond_torch_vs_own', 'natural_beyond_torch_vs_own_cpu', 'natural_vs_own', 'natural_vs_own_cpu',
      'record_function_vs_own_cpu', 'torch_floor_vs_own', 'torch_floor_vs_own_cpu'])
    """
    from torch.utils.data import DataLoader, default_collate

    from statebatch import make_windows
    from statebatch import torch as sbt

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import forecast_peers as fp

    n_series = n_series or (200 if quick else 2000)
    df = fp.make_frame(n_series, 500)
    w = make_windows(df, fp.T, id_col="id", time_col="t", target_cols=["y"], known_cols=fp.KNOWN,
                     static_cols=["store"], n_ahead=fp.N_AHEAD, batch_size=fp.B, shuffle=True, seed=0)
    ds = sbt.WindowDataset(w)

    def own() -> int:
        return sum(len(sbt.forecast_batch(b).y) for b in w.batches(0))

    def natural() -> int:
        return sum(len(b.y) for b in DataLoader(ds, batch_size=fp.B, shuffle=True))

    def batch_sampler() -> int:
        return sum(len(b.y) for b in DataLoader(ds, batch_sampler=sbt.WindowBatchSampler(w)))

    def loader_floor() -> int:  # the natural call over a dataset that does no work: torch's own part of it
        return sum(len(b) for b in DataLoader(_NoWork(len(ds)), batch_size=fp.B, shuffle=True, collate_fn=_identity))

    def sampler_floor() -> int:  # the batch-sampler form over a dataset that does nothing
        return sum(len(b) for b in DataLoader(_NoWork(len(ds)), batch_sampler=sbt.WindowBatchSampler(w),
                                              collate_fn=_identity))

    def dataset_loop() -> int:  # the batch-sampler form's work without the DataLoader: what the dataset costs
        return sum(len(default_collate(ds.__getitems__(i)).y) for i in sbt.WindowBatchSampler(w))

    def dataset_loop_rf() -> int:  # ... with the record_function that DataLoader.__next__ opens around every batch
        return sum(_recorded(lambda i: len(default_collate(ds.__getitems__(i)).y), i) for i in sbt.WindowBatchSampler(w))

    n = own()
    assert natural() == batch_sampler() == loader_floor() == sampler_floor() == n == w.n_windows
    assert dataset_loop() == dataset_loop_rf() == n
    for got, b in zip(DataLoader(ds, batch_sampler=sbt.WindowBatchSampler(w)), w.batches(0), strict=True):
        want = sbt.forecast_batch(b)  # the same windows, values and dtypes as statebatch's own batches
        assert all((x is None and y is None) or bool((x == y).all()) and x.dtype == y.dtype for x, y in zip(got, want))
    t = _median_times({"own": own, "natural": natural, "batch_sampler": batch_sampler, "loader_floor": loader_floor,
                       "sampler_floor": sampler_floor, "dataset_loop": dataset_loop, "dataset_loop_rf": dataset_loop_rf},
                      repeat or (3 if quick else 5))
    return {"workload": "torch_forecast_dataloader", "statebatch_s": t["natural"],
            "peer": "statebatch's own batches through forecast_batch", "peer_s": t["own"],
            "ratio": t["own"] / t["natural"], "floor_s": None, "statebatch_vs_floor": None,
            "series": n_series, "steps": 500, "windows": n, "timesteps": fp.T, "batch": fp.B,
            "batch_sampler_s": t["batch_sampler"], "natural_vs_own": t["natural"] / t["own"],
            "batch_sampler_vs_own": t["batch_sampler"] / t["own"], "own_cpu_s": t["own_cpu"],
            "natural_cpu_s": t["natural_cpu"], "batch_sampler_cpu_s": t["batch_sampler_cpu"],
            "natural_vs_own_cpu": t["natural_cpu"] / t["own_cpu"],
            "batch_sampler_vs_own_cpu": t["batch_sampler_cpu"] / t["own_cpu"],
            "torch_loader_floor_s": t["loader_floor"], "torch_floor_vs_own": t["loader_floor"] / t["own"],
            "torch_floor_vs_own_cpu": t["loader_floor_cpu"] / t["own_cpu"],
            "natural_beyond_torch_vs_own": (t["natural"] - t["loader_floor"]) / t["own"],
            "natural_beyond_torch_vs_own_cpu": (t["natural_cpu"] - t["loader_floor_cpu"]) / t["own_cpu"],
            "torch_batch_sampler_floor_s": t["sampler_floor"],
            "batch_sampler_beyond_torch_vs_own": (t["batch_sampler"] - t["sampler_floor"]) / t["own"],
            "batch_sampler_beyond_torch_vs_own_cpu": (t["batch_sampler_cpu"] - t["sampler_floor_cpu"]) / t["own_cpu"],
            **_dataloader_share(t), "timing": "median"}


def _dataloader_share(t: dict[str, float]) -> dict[str, float]:
    """What the dataset costs and what torch's DataLoader adds around it, against statebatch's own batches (CPU
    time): ``dataset_loop`` runs the batch-sampler form's work (``__getitems__`` + ``default_collate`` per batch)
    without the DataLoader; ``record_function_vs_own_cpu`` is what the ``record_function`` that
    ``DataLoader.__next__`` opens around every batch adds to that loop; ``torch_batch_sampler_floor_s`` measures
    it over a dataset that does nothing, where it stays in the cache."""
    return {"dataset_loop_s": t["dataset_loop"], "dataset_loop_vs_own_cpu": t["dataset_loop_cpu"] / t["own_cpu"],
            "record_function_vs_own_cpu": (t["dataset_loop_rf_cpu"] - t["dataset_loop_cpu"]) / t["own_cpu"],
            "dataloader_beyond_dataset_vs_own_cpu": (t["batch_sampler_cpu"] - t["dataset_loop_cpu"]) / t["own_cpu"]}


def _recorded(fn: Callable[[Any], int], arg: Any) -> int:
    """``fn(arg)`` inside a ``record_function``, as ``DataLoader.__next__`` runs every batch."""
    import torch

    with torch.autograd.profiler.record_function("## statebatch bench ##"):
        return fn(arg)


class _NoWork:
    """A map-style dataset of ``n`` items whose batches cost nothing: the DataLoader's own part of an epoch."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices: list[int]) -> list[int]:
        return indices


def _identity(batch: Any) -> Any:
    return batch
