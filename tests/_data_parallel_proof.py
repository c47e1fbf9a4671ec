"""Run in a fresh process by tests/test_data_parallel.py: stateful lanes under Keras data parallelism.

``python tests/_data_parallel_proof.py R1,R2,...`` with ``KERAS_BACKEND`` set. The devices must exist
before the backend starts, hence a process of its own: 4 CPU devices for JAX
(``--xla_force_host_platform_device_count``), 4 logical CPU devices for TensorFlow. For each replica
count R the same stateful LSTM (same initial weights) is

- run by ``statebatch.keras.predict`` on lanes repacked every epoch (12 series in 8 lanes, resets),
  epochs 0 and 1, and every series' outputs are compared with the same weights run on that series
  alone (a plain LSTM on the whole series);
- evaluated by ``model.evaluate`` with ``LaneResetCallback``: the loss of one device;
- trained by ``fit_stateful`` for 2 epochs on the replicas, and the weights, optimizer variables and
  lane states compared with the same training on one device.

Prints one JSON line: ``{"R": {"predict": max_abs_err, "weights": ..., "optimizer": ..., "states": ...}}``.
"""

import json
import os
import sys

REPLICAS = [int(r) for r in sys.argv[1].split(",")]
BACKEND = os.environ["KERAS_BACKEND"]
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
elif BACKEND == "tensorflow":
    import tensorflow as tf

    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * 4)

import contextlib  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import statebatch as sb  # noqa: E402
from statebatch.keras import (KerasState, LaneResetCallback, StatefulDataset, fit_stateful,  # noqa: E402
                              model_batch_size, predict)

rng = np.random.default_rng(0)
series = [rng.normal(size=(int(n), 2)).astype("float32") for n in rng.integers(20, 60, 12)]
B, T = 8, 10


def arranged():
    return sb.arrange_stateful(series, timesteps=T, batch_size=B, shuffle=os.environ.get("SHUF", "1") == "1", seed=3)


INITIAL: list = []


def build(batch):
    inp = keras.Input(batch_shape=(batch, T, 2))
    h = keras.layers.LSTM(6, stateful=True, return_sequences=True)(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    model.compile((keras.optimizers.SGD(0.1) if os.environ.get("OPT") == "sgd" else keras.optimizers.Adam(0.01)), "mse")
    if not INITIAL:  # every model starts from the same weights (initialisers differ under a strategy)
        INITIAL.extend(np.asarray(w) for w in model.get_weights())
    model.set_weights(INITIAL)
    return model


def whole_series_error(model, arr, epoch):
    arr.set_epoch(epoch)
    outs = predict(model, arr)
    inp = keras.Input(batch_shape=(1, None, 2))
    plain = keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(6, return_sequences=True)(inp)))
    plain.set_weights(model.get_weights())
    return max(float(np.abs(np.asarray(plain(s[None, :len(o)]))[0] - o).max()) for s, o in zip(series, outs))


def evaluated(model):
    """``model.evaluate`` over the lanes with LaneResetCallback (the loss of epoch 0's plan)."""
    arr = arranged()
    return float(model.evaluate(StatefulDataset(arr), callbacks=[LaneResetCallback(arr)], verbose=0))


def trained(model):
    fit_stateful(model, arranged(), epochs=int(os.environ.get("EPOCHS", "2")), verbose=0)
    return ([np.asarray(w) for w in model.get_weights()],
            [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.optimizer.variables],
            KerasState(model).snapshot())


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def scope(r):
    """The distribution for r replicas, and the batch size the model is built with under it."""
    if BACKEND == "jax":
        import jax

        dist = keras.distribution.DataParallel(devices=jax.devices()[:r])
        keras.distribution.set_distribution(dist)
        return contextlib.nullcontext()
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(r)])
    return strategy.scope()


reference_loss = evaluated(build(B))
reference = trained(build(B))
report = {}
for r in REPLICAS:
    with scope(r):
        batch = model_batch_size(arranged())
        model = build(batch)
        model_fit = build(batch)
    arr = arranged()
    errs = [whole_series_error(model, arr, e) for e in (0, 1)]
    loss = evaluated(model)
    got = trained(model_fit)
    if BACKEND == "jax":
        keras.distribution.set_distribution(None)
    report[str(r)] = {"batch": batch, "predict": max(errs), "evaluate": abs(loss - reference_loss),
                      "weights": max_diff(got[0], reference[0]),
                      "optimizer": max_diff(got[1], reference[1]), "states": max_diff(got[2], reference[2])}
print(json.dumps(report))
