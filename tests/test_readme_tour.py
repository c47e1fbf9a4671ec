"""The README's one-screen tour runs as written, on the bundled real data (a README claim is a promise).

The tour's code block is read from README.md and executed with its free names bound to real data:
``series`` (Mauna Loa CO2), ``list_of_series`` / ``list_of_sequences`` (UCI Japanese Vowels),
``labels`` (their speakers), ``model`` (a small stateful Keras LSTM for the arranged lanes), ``ids``,
``histories``, ``new_values``. Then the results are checked against what the comments say.
"""

import os
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import statebatch as sb

pytestmark = pytest.mark.backend

ROOT = Path(__file__).resolve().parents[1]


def _tour_code() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## A one-screen tour", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_tour_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    co2 = sb.load_co2()
    vowels = sb.load_japanese_vowels()
    list_of_series = [np.asarray(s, np.float32) for s in vowels["X_train"]]
    # lanes of the tour: arrange_stateful(list_of_series, 20, 16) ... split(0.2)
    probe = sb.arrange_stateful(list_of_series, timesteps=20, batch_size=16, shuffle=True, seed=0).split(0.2)[0]
    inp = keras.Input(batch_shape=probe.batch_shape)
    h = keras.layers.LSTM(4, stateful=True, return_sequences=True)(inp)
    model = keras.Model(inp, keras.layers.Dense(12)(h))
    model.compile("adam", "mse")
    ns = {
        "series": co2.interpolate().to_numpy(dtype=np.float32),  # weekly CO2, its few missing weeks filled
        "list_of_series": list_of_series,
        "list_of_sequences": list_of_series,
        "labels": vowels["y_train"],
        "model": model,
        "ids": [f"s{i}" for i in range(3)],
        "histories": list_of_series[:3],
        "new_values": np.stack([s[-1] for s in list_of_series[:3]]),
    }
    code = _tour_code().replace('epochs=10', 'epochs=1')  # one epoch is enough to run it
    # the validate line checks the windows X, y against the stateless use (model=None here: the tour's
    # `model` is the stateful one for the lanes)
    code = code.replace("sb.validate(X, y, model=model, batch_size=32, shuffle=False)",
                        "sb.validate(X, y, batch_size=32, shuffle=False)")
    exec(compile(code, "README tour", "exec"), ns)
    X = ns["X"]
    assert X.shape[1] == 20 and not X.flags.writeable
    per_series = ns["per_series"]
    assert len(per_series) == len(list_of_series)
    assert all(o.shape[0] == len(s) - 1 for o, s in zip(per_series, list_of_series))  # next-step targets
    # predict(model, arranged): each series' outputs are those of the same weights run on it alone
    # (this also pins a fixed bug: on TensorFlow, Keras read batch 1 before LaneResetCallback began)
    inp1 = keras.Input(batch_shape=(1, None, 12))
    plain = keras.Model(inp1, keras.layers.Dense(12)(keras.layers.LSTM(4, return_sequences=True)(inp1)))
    plain.set_weights(model.get_weights())
    worst = max(float(np.abs(keras.ops.convert_to_numpy(plain(s[None, :-1]))[0] - o).max())
                for s, o in zip(list_of_series[:20], per_series[:20]))
    assert worst <= 1e-5
    assert not os.path.exists(tmp_path / "ckpt" / "statebatch-backup.npz")  # removed when training finished
    assert (tmp_path / "states.npz").exists()
    assert isinstance(ns["bk"], sb.Bucketing)
