"""Forecasting windows side by side with the forecasting libraries' data layers (bench/run.py's
``forecast_windows`` workload; the peers live in their own venv, ``make bench-peers``).

One long frame: ``n_series`` series x ``steps`` steps (default 2,000 x 500), columns ``id``, ``t``, the
target ``y``, two known-future covariates ``price`` and ``dow`` and one static categorical ``store``
(10 categories, one per series). Windows: 48 input steps, the next step as target (``n_ahead=1``), batch
256, one shuffled epoch of torch tensors. Each library is measured in a process of its own
(``python bench/forecast_peers.py --lib NAME ...``), the same way:

- ``build_s``: from the frame (already in memory) to the object an epoch is drawn from;
- ``epoch_s``: one epoch of batches as torch tensors (statebatch: median of 3 epochs; peers: 1), and
  ``epoch_cpu_s``, the process's CPU time over it (all threads), which load from other work on a shared
  machine moves much less than the wall time (the libraries run one after the other, not interleaved);
- ``peak_added_bytes``: the process's peak resident memory (``VmHWM``, reset through
  ``/proc/self/clear_refs`` once the frame is built) above its resident memory at that point: build and
  epoch together. tracemalloc would miss torch's own allocations, which several peers make.

Per library (each the path its own models train on; read from the installed sources):

- statebatch: ``make_windows(frame, 48, id_col, time_col, target_cols, known_cols, static_cols,
  batch_size=256, shuffle=True)``; every batch through ``statebatch.torch.forecast_batch`` (a named
  tuple of tensors).
- pytorch-forecasting: ``TimeSeriesDataSet(...)`` with ``target_normalizer=None`` and no scalers, then
  ``to_dataloader(train=True, batch_size=256)`` (its training loader drops the last incomplete batch).
- gluonts: the ``InstanceSplitter`` its torch estimators (DeepAR) train with, every time point sampled
  (``UniformSplitSampler(p=1)``), ``as_stacked_batches(batch_size=256, shuffle_buffer_length=2560,
  output_type=torch.tensor)``; the data set is a list of dicts cut from the frame.
- darts: ``TimeSeries.from_group_dataframe`` and ``SequentialTorchTrainingDataset`` (what TFTModel
  trains on) through ``DataLoader(batch_size=256, shuffle=True, collate_fn=TorchForecastingModel.
  _batch_collate_fn)``, as ``TorchForecastingModel.fit`` builds it.
- neuralforecast: ``TimeSeriesDataset.from_df`` and ``TimeSeriesDataModule.train_dataloader()`` (batches
  of 32 series), each series batch cut by the model's ``_create_windows(batch, "train")`` (an MLP with
  ``input_size=48, h=1``, identity scaler) and all its windows served, shuffled, 256 at a time through
  ``_sample_windows`` and ``_parse_windows``, what ``training_step`` does with ``windows_batch_size``
  windows of it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

T, N_AHEAD, B = 48, 1, 256
KNOWN = ["price", "dow"]
LIBS = ("statebatch", "pytorch-forecasting", "gluonts", "darts", "neuralforecast")
MODULES = {"statebatch": "statebatch", "pytorch-forecasting": "pytorch_forecasting", "gluonts": "gluonts",
           "darts": "darts", "neuralforecast": "neuralforecast"}


def make_frame(n_series: int, steps: int, seed: int = 0):
    """The long frame every library starts from, sorted by (id, t)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = n_series * steps
    t = np.tile(np.arange(steps, dtype=np.int64), n_series)
    stores = np.array([f"store_{k}" for k in range(10)])
    return pd.DataFrame({
        "id": np.repeat(np.arange(n_series, dtype=np.int64), steps),
        "t": t,
        "y": np.cumsum(rng.standard_normal((n_series, steps)), axis=1).astype(np.float32).ravel(),
        "price": (10 + rng.standard_normal(n)).astype(np.float32),
        "dow": (t % 7).astype(np.float32),
        "store": pd.Categorical(np.repeat(stores[rng.integers(0, 10, n_series)], steps), categories=stores),
    })


# --------------------------------------------------------------------------- memory (Linux /proc)
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# the VmHWM reset is the out-of-core benchmark's (bench/ooc.py), one definition for both
from ooc import reset_peak_rss as reset_peak  # noqa: E402


def peak_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# --------------------------------------------------------------------------- the libraries
def statebatch_lib(df):
    import statebatch as sb

    try:  # torch tensors where torch is installed; numpy batches elsewhere (e.g. the JAX venv)
        from statebatch.torch import forecast_batch
    except ImportError:
        def forecast_batch(b):
            return type("NumpyBatch", (), {"y": b["y"]})

    def build():
        return sb.make_windows(df, T, id_col="id", time_col="t", target_cols=["y"], known_cols=KNOWN,
                               static_cols=["store"], n_ahead=N_AHEAD, batch_size=B, shuffle=True, seed=0)

    def epoch(w):
        n = 0
        for b in w.batches():
            fb = forecast_batch(b)
            n += len(fb.y)
        w.set_epoch(w.epoch + 1)
        return n

    return build, epoch, 3


def pytorch_forecasting_lib(df):
    from pytorch_forecasting import TimeSeriesDataSet

    def build():
        return TimeSeriesDataSet(
            df, time_idx="t", target="y", group_ids=["id"], max_encoder_length=T, min_encoder_length=T,
            max_prediction_length=N_AHEAD, min_prediction_length=N_AHEAD, static_categoricals=["store"],
            time_varying_known_reals=KNOWN, time_varying_unknown_reals=["y"], target_normalizer=None,
            scalers={k: None for k in KNOWN}, add_relative_time_idx=False, add_target_scales=False,
            add_encoder_length=False)

    def epoch(ds):
        n = 0
        for _x, (y, _) in ds.to_dataloader(train=True, batch_size=B, num_workers=0):
            n += len(y)
        return n

    return build, epoch, 1


def _series_arrays(df):
    """The frame cut into per-series numpy arrays (a stable sort by id, then split): what the peers that
    take a list of series are given."""
    order = np.argsort(df["id"].to_numpy(), kind="stable")
    ids = df["id"].to_numpy()[order]
    cut = np.flatnonzero(np.diff(ids)) + 1
    y = np.split(df["y"].to_numpy()[order], cut)
    known = np.split(df[KNOWN].to_numpy()[order], cut)
    store = df["store"].cat.codes.to_numpy()[order][np.r_[0, cut]]
    return ids[np.r_[0, cut]], y, known, store


def gluonts_lib(df):
    import pandas as pd
    import torch
    from gluonts.dataset.field_names import FieldName
    from gluonts.dataset.loader import as_stacked_batches
    from gluonts.transform import (
        AsNumpyArray,
        Chain,
        InstanceSplitter,
        UniformSplitSampler,
    )

    fields = ["past_target", "future_target", "past_feat_dynamic_real", "future_feat_dynamic_real",
              "feat_static_cat", "past_is_pad"]

    def build():
        ids, ys, known, store = _series_arrays(df)
        start = pd.Period("2020-01-01", freq="D")
        data = [{FieldName.ITEM_ID: int(i), FieldName.START: start, FieldName.TARGET: y,
                 FieldName.FEAT_DYNAMIC_REAL: k.T, FieldName.FEAT_STATIC_CAT: [int(c)]}
                for i, y, k, c in zip(ids, ys, known, store)]
        transform = Chain([
            AsNumpyArray(field=FieldName.FEAT_STATIC_CAT, expected_ndim=1, dtype=int),
            AsNumpyArray(field=FieldName.TARGET, expected_ndim=1),
            InstanceSplitter(target_field=FieldName.TARGET, is_pad_field=FieldName.IS_PAD,
                             start_field=FieldName.START, forecast_start_field=FieldName.FORECAST_START,
                             instance_sampler=UniformSplitSampler(p=1.0, min_past=T, min_future=N_AHEAD),
                             past_length=T, future_length=N_AHEAD,
                             time_series_fields=[FieldName.FEAT_DYNAMIC_REAL], dummy_value=0.0)])
        return data, transform

    def epoch(built):
        data, transform = built
        n = 0
        for b in as_stacked_batches(transform.apply(data, is_train=True), batch_size=B,
                                    shuffle_buffer_length=10 * B, field_names=fields, output_type=torch.tensor):
            n += len(b["future_target"])
        return n

    return build, epoch, 1


def darts_lib(df):
    from darts import TimeSeries
    from darts.models.forecasting.torch_forecasting_model import TorchForecastingModel
    from darts.utils.data.torch_datasets.training_dataset import (
        SequentialTorchTrainingDataset,
    )
    from torch.utils.data import DataLoader

    def build():
        frame = df.assign(store_code=df["store"].cat.codes.astype(np.float32))  # static covariates are numeric
        series = TimeSeries.from_group_dataframe(frame, group_cols="id", time_col="t", value_cols="y",
                                                 static_cols=["store_code"])
        covs = TimeSeries.from_group_dataframe(frame, group_cols="id", time_col="t", value_cols=KNOWN)
        return SequentialTorchTrainingDataset(series, future_covariates=covs, input_chunk_length=T,
                                              output_chunk_length=N_AHEAD, use_static_covariates=True)

    def epoch(ds):
        n = 0
        for b in DataLoader(ds, batch_size=B, shuffle=True, drop_last=False,
                            collate_fn=TorchForecastingModel._batch_collate_fn):
            n += len(b[-1])
        return n

    return build, epoch, 1


def neuralforecast_lib(df):
    import logging

    import torch

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    from neuralforecast.models import MLP
    from neuralforecast.tsdataset import TimeSeriesDataModule, TimeSeriesDataset

    def build():
        frame = df[["id", "t", "y", *KNOWN]].rename(columns={"id": "unique_id", "t": "ds"})
        static = (df.groupby("id", sort=True)["store"].first().cat.codes.astype(np.float32)
                  .rename("store").reset_index().rename(columns={"id": "unique_id"}))
        dataset = TimeSeriesDataset.from_df(frame, static_df=static)[0]
        model = MLP(h=N_AHEAD, input_size=T, futr_exog_list=KNOWN, stat_exog_list=["store"], scaler_type="identity",
                    windows_batch_size=B, batch_size=32, start_padding_enabled=False, max_steps=1)
        return dataset, model

    def epoch(built):
        dataset, model = built
        n = 0
        for batch in TimeSeriesDataModule(dataset, batch_size=model.batch_size, shuffle_train=True).train_dataloader():
            temporal, static, static_cols, final, sw, temporal_cols = model._create_windows(batch, step="train")
            order = torch.randperm(len(final))
            for lo in range(0, len(order), B):
                windows = model._sample_windows(temporal, static, static_cols, temporal_cols, order[lo: lo + B],
                                                final, sw)
                windows = model._normalization(windows=windows, y_idx=batch["y_idx"])
                _, _, outsample_y, *_ = model._parse_windows(batch, windows)
                n += len(outsample_y)
        return n

    return build, epoch, 1


FACTORIES = {"statebatch": statebatch_lib, "pytorch-forecasting": pytorch_forecasting_lib, "gluonts": gluonts_lib,
             "darts": darts_lib, "neuralforecast": neuralforecast_lib}


def pf_sample(ds, n_batches: int = 2) -> dict:
    """The first ``n_batches`` shuffled training batches of a pytorch-forecasting data set, as numpy arrays
    with their series id and first decoder time, to compare with statebatch's windows."""
    out: dict = {}
    loader = ds.to_dataloader(train=True, batch_size=B, num_workers=0)
    for k, (x, (y, _)) in enumerate(loader):
        if k == n_batches:
            break
        idx = ds.x_to_index(x)
        part = {"id": idx["id"].to_numpy(), "decoder_t": idx["t"].to_numpy(),
                "encoder_cont": x["encoder_cont"].numpy(), "decoder_cont": x["decoder_cont"].numpy(),
                "encoder_target": x["encoder_target"].numpy(), "decoder_target": y.numpy(),
                "static_code": x["encoder_cat"][:, 0, ds.categoricals.index("store")].numpy()}
        for key, v in part.items():
            out.setdefault(key, []).append(v)
    out = {k: np.concatenate(v) for k, v in out.items()}
    out["store_labels"] = np.asarray(ds._categorical_encoders["store"].inverse_transform(
        __import__("torch").from_numpy(out["static_code"].astype(np.int64))), dtype=object).astype(str)
    out["reals"] = np.array(ds.reals)
    return out


def compare_with_pf(sample: str, n_series: int, steps: int) -> dict:
    """Match pytorch-forecasting's sampled windows (by series id and first decoder time) with statebatch's
    windows of the same frame and compare encoder values (target and known covariates), decoder known
    values, the static category and the target. Float32 on both sides: equal means exactly equal."""
    import statebatch as sb

    d = dict(np.load(sample, allow_pickle=False))
    df = make_frame(n_series, steps)
    w = sb.make_windows(df, T, id_col="id", time_col="t", target_cols=["y"], known_cols=KNOWN,
                        static_cols=["store"], n_ahead=N_AHEAD, batch_size=B)
    # first decoder time of every statebatch window: the frame's t at step start + T of its series
    srt = df.sort_values(["id", "t"], kind="stable")
    first_row = srt.reset_index(drop=True).groupby("id", sort=True).cumcount().eq(0)
    offsets = np.flatnonzero(first_row.to_numpy())
    sid = np.asarray(w.series_ids)[w.series]
    dec_t = srt["t"].to_numpy()[offsets[w.series] + w.start + T]
    where = {(int(i), int(t)): k for k, (i, t) in enumerate(zip(sid, dec_t))}
    idx = np.array([where.get((int(i), int(t)), -1) for i, t in zip(d["id"], d["decoder_t"])])
    found = bool((idx >= 0).all())
    out = {"compared": len(idx), "all_matched": found}
    if not found:
        return {**out, "windows_equal": False}
    a = w.take(idx)
    f = w.forecast
    reals = list(d["reals"])
    checks = {
        "encoder": all(np.array_equal(a["past"][:, :, f.past_names.index(c)], d["encoder_cont"][:, :, reals.index(c)])
                       for c in ["y", *KNOWN]),
        "encoder_target": np.array_equal(a["past"][:, :, f.past_names.index("y")], d["encoder_target"]),
        "decoder_known": all(np.array_equal(a["future"][:, :, f.future_names.index(c)],
                                            d["decoder_cont"][:, :, reals.index(c)]) for c in KNOWN),
        "static": np.array_equal(np.asarray(f.static_vocab["store"])[a["static"][:, 0]], d["store_labels"]),
        "target": np.array_equal(a["y"][:, :, 0], d["decoder_target"]),
    }
    return {**out, **{f"equal_{k}": bool(v) for k, v in checks.items()}, "windows_equal": all(checks.values())}


def measure(lib: str, n_series: int, steps: int, sample: str | None = None) -> dict:
    """Build and one epoch of ``lib`` on the frame, in this process (see the module docstring)."""
    try:
        __import__(MODULES[lib])
        build, epoch, repeat = FACTORIES[lib](None)
    except ImportError as exc:
        return {"lib": lib, "installed": False, "reason": f"not installed here ({exc}); `make bench-peers`"}
    df = make_frame(n_series, steps)
    build, epoch, repeat = FACTORIES[lib](df)
    gc.collect()
    base = rss_bytes()
    resettable = reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    built = build()
    build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    times, cpu, n = [], [], 0
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        n = epoch(built)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = peak_bytes() - base
    rec = {"lib": lib, "installed": True, "version": sys.modules[MODULES[lib]].__dict__.get("__version__"),
           "build_s": build_s, "epoch_s": float(np.median(times)), "epochs_timed": repeat, "windows_served": n,
           "build_cpu_s": build_cpu_s, "epoch_cpu_s": float(np.median(cpu)), "load_avg_1min": os.getloadavg()[0],
           "peak_added_bytes": peak if resettable else None, "data_bytes": int(df.memory_usage(deep=True).sum())}
    if lib == "pytorch-forecasting":
        rec["windows"] = len(built)
        if sample:
            np.savez(sample, **pf_sample(built))
    elif lib == "statebatch":
        rec["windows"] = built.n_windows
        rec["batches_as"] = "torch tensors" if "torch" in sys.modules else "numpy arrays (torch not installed)"
    return rec


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lib", required=True, choices=LIBS)
    p.add_argument("--series", type=int, default=2000)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--json", required=True)
    p.add_argument("--sample", default=None, help="pytorch-forecasting: write a sample of its windows here (.npz)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    Path(args.json).write_text(json.dumps(measure(args.lib, args.series, args.steps, args.sample)))


if __name__ == "__main__":
    main()
