"""Feeding Keras `fit` from statebatch vs from numpy arrays, on the backend this process runs.

    KERAS_BACKEND=jax .venv-jax/bin/python bench/fit_feed.py [--quick] [--repeats 5] [--epochs 3]

Stateful LSTM (32 units), B=64, T=50, F=8, 200 batches per epoch (50 with --quick). Both feeds run the
same batches in the same order with the same LaneResetCallback inside statebatch's stateful scope, so
the only difference is where batches come from: `fit_stateful(model, arranged)` (a tf.data view on
TensorFlow, the StatefulDataset elsewhere) vs `model.fit(X, y, batch_size=64, shuffle=False)` on the
materialised arrays. The two feeds alternate, `--epochs` epochs per fit call, `--repeats` calls each.

Measured, for each feed: the time per batch inside an epoch (from one ``on_train_batch_begin`` to the
next: fetching the batch and training on it; the primary figure, robust to stalls), each epoch from
``on_epoch_begin`` to ``on_epoch_end``, and each whole ``fit`` call (adds per-call costs: checks,
building the dataset). On this 2-core machine some epochs and calls of either feed include an idle
stall of about 1 s (TensorFlow: the machine sits idle, so no feed is computing; tf.data iterator
teardown), which makes epoch and call medians swing by +-30% between runs; the per-batch median is
not moved by it. Prints one JSON line with medians and ratios (numpy time / statebatch time:
>= 0.97 is "within 3%").
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import statebatch as sb  # noqa: E402
from statebatch.keras import LaneResetCallback, fit_stateful, stateful_scope  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5, help="fit calls per feed")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fit call")
    args = ap.parse_args(argv)
    B, T, F, U = 64, 50, 8, 32
    n_batches = 50 if args.quick else 200
    series = np.random.default_rng(0).standard_normal((B * T * n_batches + 1, F)).astype("float32")
    a = sb.arrange_stateful(series, T, B, targets="next", tail="drop")
    X = np.concatenate([a.batch(k)[0] for k in range(a.n_batches)])
    Y = np.concatenate([a.batch(k)[1] for k in range(a.n_batches)])
    keras.utils.set_random_seed(0)
    inp = keras.Input(batch_shape=(B, T, F))
    model = keras.Model(inp, keras.layers.Dense(F)(keras.layers.LSTM(U, stateful=True, return_sequences=True)(inp)))
    model.compile(optimizer="adam", loss="mse")

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times: list[float] = []

            self.steps: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()
            self._last = None

        def on_train_batch_begin(self, batch, logs=None):
            now = time.perf_counter()
            if self._last is not None:
                self.steps.append(now - self._last)
            self._last = now

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t0)

    def from_statebatch(timer, epochs):
        fit_stateful(model, a, epochs=epochs, verbose=0, callbacks=[timer])

    def from_numpy(timer, epochs):
        with stateful_scope(model):
            model.fit(X, Y, batch_size=B, epochs=epochs, shuffle=False, verbose=0,
                      callbacks=[LaneResetCallback(a), timer])

    feeds = (("statebatch", from_statebatch), ("numpy", from_numpy))
    for _, fn in feeds:  # warm-up: compile both paths
        fn(EpochTimer(), 1)
    epochs = {name: [] for name, _ in feeds}
    steps = {name: [] for name, _ in feeds}
    calls = {name: [] for name, _ in feeds}
    for _ in range(args.repeats):
        for name, fn in feeds:
            timer = EpochTimer()
            t0 = time.perf_counter()
            fn(timer, args.epochs)
            calls[name].append(time.perf_counter() - t0)
            epochs[name] += timer.times
            steps[name] += timer.steps
    step = {k: statistics.median(v) for k, v in steps.items()}
    med = {k: statistics.median(v) for k, v in epochs.items()}
    call = {k: statistics.median(v) for k, v in calls.items()}
    print(json.dumps({"backend": keras.backend.backend(), "keras": keras.__version__, "n_batches": a.n_batches,
                      "epochs_each": len(epochs["numpy"]), "batches_timed_each": len(steps["numpy"]),
                      "statebatch_batch_ms": 1e3 * step["statebatch"], "numpy_batch_ms": 1e3 * step["numpy"],
                      "ratio": step["numpy"] / step["statebatch"],
                      "statebatch_epoch_s": med["statebatch"], "numpy_epoch_s": med["numpy"],
                      "epoch_ratio": med["numpy"] / med["statebatch"],
                      "statebatch_call_s": call["statebatch"], "numpy_call_s": call["numpy"],
                      "call_ratio": call["numpy"] / call["statebatch"],
                      "epochs": epochs, "calls": calls}))


if __name__ == "__main__":
    main()
