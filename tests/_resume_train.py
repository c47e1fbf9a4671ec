"""A small stateful training run for tests/test_resume_keras.py, run in a subprocess.

    python tests/_resume_train.py OUT.npz [--backup DIR] [--save-freq N|epoch] [--kill-at K]
                                  [--epochs E] [--validation] [--jitter]

Trains a tiny stateful LSTM with statebatch.keras.fit_stateful and writes the final weights, optimizer
variables, lane states and history to OUT.npz. ``--kill-at K``: the process kills itself with SIGKILL
at the end of its K-th training batch (counted over all epochs and over the fits of a resumed run),
after fit_stateful's backup callback ran for that batch.
"""
import argparse
import os
import signal
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import statebatch as sb
from statebatch.keras import KerasState


def data(jitter: bool, seed: int = 5, values: int = 11):
    rng = np.random.default_rng(values)
    series = [rng.normal(size=(n, 2)).astype("float32") for n in (23, 17, 31, 9, 26, 14)]
    return sb.arrange_stateful(series, 5, 3, shuffle=True, seed=seed, jitter=2 if jitter else 0)


def model(jitter: bool):
    keras.utils.set_random_seed(1)
    inp = keras.Input(batch_shape=(3, None if jitter else 5, 2))
    h = keras.layers.LSTM(4, stateful=True, return_sequences=True)(inp)
    m = keras.Model(inp, keras.layers.Dense(2)(h))
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return m


class Kill(keras.callbacks.Callback):
    """End training after ``at`` batches: SIGKILL the process (``stop`` another way, e.g. an exception)."""

    def __init__(self, at: int, stop=None):
        super().__init__()
        self.at, self.seen = at, 0
        self.stop = stop or (lambda: os.kill(os.getpid(), signal.SIGKILL))

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            self.stop()


def train(*, backup=None, save_freq=1, kill_at=None, epochs=3, validation=False, jitter=False) -> dict:
    """Run the training; the final weights (w*), optimizer variables (o*), lane states (s*), history (h_*)."""
    arranged = data(jitter)
    train_part, val = arranged.split(0.25) if validation else (arranged, None)
    m = model(jitter)
    kwargs = {"backup_dir": backup, "save_freq": save_freq} if backup else {}
    cbs = [Kill(kill_at)] if kill_at else []
    hist = sb.keras.fit_stateful(m, train_part, epochs=epochs, validation=val, callbacks=cbs, verbose=0, **kwargs)
    out = {f"w{j}": keras.ops.convert_to_numpy(v.value) for j, v in enumerate(m.weights)}
    out.update({f"o{j}": keras.ops.convert_to_numpy(v.value) for j, v in enumerate(m.optimizer.variables)})
    out.update({f"s{j}": s for j, s in enumerate(KerasState(m).snapshot())})
    out.update({f"h_{k}": np.asarray(v) for k, v in hist.history.items()})
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--backup")
    p.add_argument("--save-freq", default="1")
    p.add_argument("--kill-at", type=int)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--validation", action="store_true")
    p.add_argument("--jitter", action="store_true")
    a = p.parse_args()
    out = train(backup=a.backup, save_freq=a.save_freq if a.save_freq == "epoch" else int(a.save_freq),
                kill_at=a.kill_at, epochs=a.epochs, validation=a.validation, jitter=a.jitter)
    np.savez(a.out, **out)


if __name__ == "__main__":
    main()
