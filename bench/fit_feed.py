"""Feeding Keras `fit` from statebatch vs from numpy arrays, on the backend this process runs.

    KERAS_BACKEND=jax .venv-jax/bin/python bench/fit_feed.py [--quick] [--repeats 5]

Stateful LSTM (32 units), B=64, T=50, F=8, 200 batches per epoch (50 with --quick). Both feeds run the
same batches in the same order with the same LaneResetCallback inside statebatch's stateful scope, so
the only difference is where batches come from: `fit_stateful(model, arranged)` (a tf.data view on
TensorFlow, the StatefulDataset elsewhere) vs `model.fit(X, y, batch_size=64, shuffle=False)` on the
materialised arrays. Prints one JSON line: per-epoch medians over the repeats (epochs alternate).
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
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    B, T, F, U = 64, 50, 8, 32
    n_batches = 50 if args.quick else 200
    series = np.random.default_rng(0).standard_normal((B * T * n_batches + 1, F)).astype("float32")
    a = sb.arrange_stateful(series, T, B, targets="next", remainder="drop")
    X = np.concatenate([a.batch(k)[0] for k in range(a.n_batches)])
    Y = np.concatenate([a.batch(k)[1] for k in range(a.n_batches)])
    keras.utils.set_random_seed(0)
    inp = keras.Input(batch_shape=(B, T, F))
    model = keras.Model(inp, keras.layers.Dense(F)(keras.layers.LSTM(U, stateful=True, return_sequences=True)(inp)))
    model.compile(optimizer="adam", loss="mse")

    def from_statebatch():
        fit_stateful(model, a, epochs=1, verbose=0)

    def from_numpy():
        with stateful_scope(model):
            model.fit(X, Y, batch_size=B, epochs=1, shuffle=False, verbose=0, callbacks=[LaneResetCallback(a)])

    times = {"statebatch": [], "numpy": []}
    for fn in (from_statebatch, from_numpy):  # warm-up: compile both paths
        fn()
    for _ in range(args.repeats):
        for name, fn in (("statebatch", from_statebatch), ("numpy", from_numpy)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"backend": keras.backend.backend(), "keras": keras.__version__, "n_batches": a.n_batches,
                      "statebatch_s": med["statebatch"], "numpy_s": med["numpy"],
                      "ratio": med["numpy"] / med["statebatch"], "runs": times}))


if __name__ == "__main__":
    main()
