"""Stateful lanes under data parallelism, proven on the backend this run uses (CI runs the file
under TensorFlow, JAX and torch).

- TensorFlow: ``tf.distribute.MirroredStrategy`` over 2 and over 4 logical CPU devices, the model
  built in the strategy's scope for ``statebatch.keras.model_batch_size(arranged)`` rows (each replica
  runs its own consecutive block of lanes and keeps their states).
- JAX: ``keras.distribution.DataParallel`` over 2 and over 4 CPU devices (one global batch sharded,
  the lanes' states sharded with it).
- torch: Keras has no data parallelism on torch; under ``torch.distributed`` (2 gloo processes)
  ``fit_stateful`` refuses with the alternatives.

Each proof runs in a process of its own (the devices must exist before the backend starts):
``tests/_data_parallel_proof.py``. There, for lanes repacked every epoch (12 series in 8 lanes, with
resets), every series' ``predict`` outputs in epochs 0 and 1 equal the same weights run on that series
alone, and 2 epochs of ``fit_stateful`` on the replicas end with the weights, optimizer variables and
lane states of the same training on one device.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

pytestmark = pytest.mark.backend

PROOF = Path(__file__).with_name("_data_parallel_proof.py")
ROOT = Path(__file__).resolve().parents[1]


def _proof(replicas: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(PROOF), replicas], env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _torch_refusal(rank: int, world: int, init: str, out: str) -> None:
    import numpy as np
    import torch.distributed as dist

    import statebatch as sb
    from statebatch.errors import ParameterError
    from statebatch.keras import fit_stateful

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        arranged = sb.arrange_stateful(np.arange(200, dtype="float32").reshape(-1, 1), timesteps=5, batch_size=4)
        inp = keras.Input(batch_shape=(4, 5, 1))
        model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.LSTM(3, stateful=True, return_sequences=True)(inp)))
        model.compile("sgd", "mse")
        try:
            fit_stateful(model, arranged, epochs=1, verbose=0)
            message = "no error"
        except ParameterError as exc:
            message = str(exc)
        Path(f"{out}.{rank}").write_text(message)
    finally:
        dist.destroy_process_group()


def test_data_parallel_lanes_equal_the_one_device_run(tmp_path):
    backend = keras.backend.backend()
    if backend == "torch":
        import torch.multiprocessing as mp

        init = f"file://{tmp_path / 'rendezvous'}"
        mp.spawn(_torch_refusal, args=(2, init, str(tmp_path / "out")), nprocs=2, join=True)
        for rank in range(2):
            message = (tmp_path / f"out.{rank}").read_text()
            assert "does not split batches over the 2 processes" in message, message
            assert "LaneLoader(arranged, num_replicas=R, rank=r)" in message
            assert "DataParallel" in message and "MirroredStrategy" in message
        return
    # TensorFlow: one strategy per process (two MirroredStrategy of different sizes in one process
    # share collective group keys); JAX: both device counts in one process.
    reports = [_proof("2"), _proof("4")] if backend == "tensorflow" else [_proof("2,4")]
    report = {k: v for r in reports for k, v in r.items()}
    assert set(report) == {"2", "4"}
    for r, got in report.items():
        # TF builds the model per replica (B / R rows), JAX for the global batch
        assert got["batch"] == (8 // int(r) if backend == "tensorflow" else 8)
        assert got["predict"] <= 1e-5, (r, got)
        assert got["evaluate"] <= 1e-5, (r, got)
        for what in ("weights", "optimizer", "states"):
            assert got[what] <= 1e-5, (r, what, got)


def test_model_built_for_the_wrong_batch_under_a_strategy_is_refused_with_the_fix():
    if keras.backend.backend() != "tensorflow":
        # JAX shards one global batch (built for B) and torch is refused above: nothing to mis-build
        assert keras.backend.backend() in ("jax", "torch")
        return
    code = """
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np, statebatch as sb
from statebatch.errors import ModelMismatchError, BatchSizeError
from statebatch.keras import fit_stateful, model_batch_size
arr = sb.arrange_stateful([np.ones((30, 2), "float32")] * 5, timesteps=5, batch_size=8)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    assert model_batch_size(arr) == 4
    inp = keras.Input(batch_shape=(8, 5, 2))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(3, stateful=True, return_sequences=True)(inp)))
    model.compile("sgd", "mse")
    try:
        model_batch_size(sb.arrange_stateful([np.ones((30, 2), "float32")] * 5, timesteps=5, batch_size=7))
        print("no error for 7 lanes")
    except BatchSizeError as exc:
        print("odd:", exc)
try:
    fit_stateful(model, arr, epochs=1, verbose=0)
    print("no error")
except ModelMismatchError as exc:
    print("wrong:", exc)
"""
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "odd: batch_size=7 lanes do not split evenly over 2 replicas" in out, out
    assert "wrong: the model runs on 2 replicas" in out and "keras.Input(batch_shape=(4, 5, 2))" in out, out
