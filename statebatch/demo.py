"""The statebatch demo: weekly Mauna Loa CO2 into a stateful Keras LSTM, done right.

    python -m statebatch.demo [--epochs N] [--plot lanes.png]

1. window the raw record (it has missing weeks: refused before training), fix them;
2. explain what Keras will do with the shapes, stateless and stateful;
3. show the classic mistake (sliding windows into a stateful model) caught by the validator;
4. arrange the series into lanes, split a continuous validation tail, train a stateful LSTM with
   per-epoch resets, and evaluate on the held-out last 20% of the record against persistence.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

__all__: list[str] = []  # an entry point (python -m statebatch.demo, make demo), no public API


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--plot", default=None, help="save the lanes picture to this PNG")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()

    import numpy as np

    import statebatch as sb

    df = sb.load_co2()
    n = len(df)
    print(f"== Mauna Loa weekly CO2: {n} weeks {df.index[0].date()} .. {df.index[-1].date()}, "
          f"{int(df['co2'].isna().sum())} missing")

    print("\n== 1. window the raw record (yearly windows)")
    try:
        sb.make_windows(df, 52)
    except sb.DataValueError as err:  # missing weeks are refused before any training
        print(f"DataValueError: {err}")
    series = df["co2"].interpolate("time")  # the fix the error suggests
    # Model the weekly change (stationary) rather than the level (which leaves the training range).
    change = series.diff().iloc[1:]
    n_train = int(0.8 * len(change))
    mean, std = change.iloc[:n_train].mean(), change.iloc[:n_train].std()  # scaler fitted on training weeks
    z = ((change - mean) / std).to_numpy("float32")
    print(f"filled {int(df['co2'].isna().sum())} weeks by time interpolation; modelling the weekly change, "
          f"scaled with the first {n_train} weeks")

    T, B = 13, 8  # a quarter of a year per chunk, 8 parallel lanes
    print("\n== 2. what Keras does with these shapes")
    windows = sb.make_windows(z[:n_train], T, targets="next")
    print(sb.explain(windows.X, batch_size=B, stateful=False))
    print(sb.explain(windows.X, batch_size=B, stateful=True))

    print("\n== 3. the classic mistake: sliding windows into a stateful model")
    try:
        X, y = windows.X, windows.y
        assert y is not None  # targets="next"
        sb.validate(X[: len(X) // B * B], y[: len(X) // B * B], batch_size=B,
                    stateful=True, shuffle=False, emit_warnings=False)
    except sb.OverlappingWindowsError as exc:
        print(f"caught {type(exc).__name__}: {exc}")

    print("\n== 4. lanes for a stateful LSTM")
    import keras

    from statebatch.keras import LaneResetCallback, StatefulDataset, fit_stateful

    arranged = sb.arrange_stateful(z[:n_train], T, B)  # next-week targets at every step
    train, val = arranged.split(0.2)  # the last 20% of the series validates (a holdout in time)
    test = sb.arrange_stateful(z[n_train - 1:], T, B)  # the held-out future, from the last training week
    print(arranged)
    print(sb.explain(train))
    sb.validate(train, shuffle=False, emit_warnings=False)
    if args.plot:
        sb.plot_lanes(arranged).savefig(args.plot, dpi=100)
        print(f"lanes picture written to {args.plot}")

    keras.utils.set_random_seed(0)
    inp = keras.Input(batch_shape=train.batch_shape)
    h = keras.layers.LSTM(32, stateful=True, return_sequences=True)(inp)
    model = keras.Model(inp, keras.layers.Dense(1)(h))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = fit_stateful(model, train, validation=val, epochs=args.epochs, verbose=0)
    losses = hist.history
    print(f"trained {args.epochs} epochs: loss {losses['loss'][0]:.4f} -> {losses['loss'][-1]:.4f}, "
          f"val_loss {losses['val_loss'][0]:.4f} -> {losses['val_loss'][-1]:.4f}")

    pred = model.predict(StatefulDataset(test), callbacks=[LaneResetCallback(test)], verbose=0)
    assert test.sample_weight is not None and test.y is not None  # targets of every step; weights: padding
    w = test.sample_weight.astype(bool)
    # next week's level = this week's level + predicted change, so level errors equal change errors
    rmse = float(np.sqrt(np.mean((pred[..., 0][w] - test.y[..., 0][w]) ** 2))) * float(std)
    persistence = float(np.sqrt(np.mean((0 - (test.y[..., 0][w] * std + mean)) ** 2)))
    seasonal = test.unbatch(pred)[0][:, 0] * std + mean
    print(f"held-out last {len(change) - n_train} weeks: next-week RMSE {rmse:.3f} ppm (stateful LSTM) vs "
          f"{persistence:.3f} ppm (persistence: next week = this week)")
    print(f"predicted weekly changes for the first held-out weeks (ppm): {np.round(seasonal[:6], 3).tolist()}")
    elapsed = time.perf_counter() - t0
    print(f"\ndone in {elapsed:.1f} s")
    return {"rmse_ppm": rmse, "persistence_ppm": persistence, "loss": losses["loss"], "seconds": elapsed}


if __name__ == "__main__":
    main()
