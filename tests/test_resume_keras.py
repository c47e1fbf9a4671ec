"""Resumable stateful training (fit_stateful(backup_dir=..., save_freq=...)) and resumable Keras datasets.

The central test kills a real training process with SIGKILL at a batch chosen at random, runs the same
call again in a fresh process, and compares the final weights, optimizer variables, lane states and
the resumed epochs' history with an uninterrupted run.
"""
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import _resume_train
import keras
import numpy as np
import pytest
from _backend import BACKEND
from _threads import run_threads
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch.errors import ParameterError, StoreError
from statebatch.keras import BucketDataset, StatefulDataset, WindowDataset
from statebatch.results.schedule import BACKUP_FILE, TrainingBackup

pytestmark = pytest.mark.backend
SCRIPT = Path(__file__).with_name("_resume_train.py")
ROOT = SCRIPT.parent.parent


def _script(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def _assert_same(want: dict, got: dict, context: str) -> None:
    params = [k for k in want if not k.startswith("h_")]
    assert sorted(params) == sorted(k for k in got if not k.startswith("h_")), context
    assert any(k.startswith("o") for k in params) and any(k.startswith("s") for k in params)
    for k in params:
        assert want[k].shape == got[k].shape, (k, context)
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-6, err_msg=f"{k} ({context})")
    for k in (k for k in want if k.startswith("h_")):
        resumed = np.asarray(got[k])  # the resumed run reports the epochs it ran (from the interrupted one on)
        assert 1 <= len(resumed) <= len(want[k]), (k, context)
        np.testing.assert_allclose(resumed, want[k][len(want[k]) - len(resumed):], rtol=0, atol=1e-6,
                                   err_msg=f"{k} ({context})")


def test_training_killed_at_a_random_batch_resumes_to_the_uninterrupted_result(tmp_path):
    # a fresh random case every run; STATEBATCH_RESUME_SEED=<seed from a failure message> replays one
    seed = int(os.environ.get("STATEBATCH_RESUME_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    epochs = 3
    validation = rng.random() < 0.5
    jitter = rng.random() < 0.5  # chunk boundaries that move from epoch to epoch (the time axis is None)
    arranged = _resume_train.data(jitter)
    sizes = [(arranged.split(0.25)[0] if validation else arranged).plan(e).n_batches for e in range(epochs)]
    kill_at = rng.randint(1, sum(sizes) - 1)
    save_freq = rng.choice([1, 2, 3, "epoch"])
    context = (f"random seed {seed}: kill after batch {kill_at}, save_freq={save_freq}, validation={validation}, "
               f"jitter={jitter}")
    flags = (["--epochs", str(epochs), "--save-freq", str(save_freq)] + (["--validation"] if validation else [])
             + (["--jitter"] if jitter else []))
    backup = tmp_path / "backup"
    # where the last backup before the kill stands: after `done` batches, i.e. in epoch `at_epoch` (a batch's
    # backup is written before the killing callback runs; an epoch's backup after its last batch's callbacks)
    done = kill_at - kill_at % save_freq if save_freq != "epoch" else max(
        [c for c in np.cumsum([0] + sizes) if c < kill_at])
    at_epoch = int(np.searchsorted(np.cumsum(sizes), done, side="right"))

    killed = _script(str(tmp_path / "killed.npz"), "--backup", str(backup), "--kill-at", str(kill_at), *flags)
    assert killed.returncode == -signal.SIGKILL, (context, killed.stderr[-2000:])
    assert (backup / BACKUP_FILE).exists() == (done > 0), context
    assert not (tmp_path / "killed.npz").exists()

    resumed = _script(str(tmp_path / "resumed.npz"), "--backup", str(backup), *flags)
    assert resumed.returncode == 0, (context, resumed.stderr[-3000:])
    assert not backup.exists(), "the backup is removed once training finished"
    got = dict(np.load(tmp_path / "resumed.npz"))

    want = _resume_train.train(epochs=epochs, validation=validation, jitter=jitter)  # uninterrupted, no backup
    _assert_same(want, got, context)
    assert len(got["h_loss"]) == epochs - at_epoch, context  # it resumed where the backup stood


def _interrupt():
    raise KeyboardInterrupt


def _Stop(at: int):
    """Interrupt training (an exception, not a kill) after ``at`` batches."""
    return _resume_train.Kill(at, stop=_interrupt)


def _interrupted_backup(directory, at=4) -> None:
    arranged = _resume_train.data(False)
    with pytest.raises(KeyboardInterrupt):
        sb.keras.fit_stateful(_resume_train.model(False), arranged, epochs=2, backup_dir=directory, save_freq=1,
                              callbacks=[_Stop(at)], verbose=0)
    assert (Path(directory) / BACKUP_FILE).exists()


def test_in_process_resume_with_validation_matches_and_removes_the_backup(tmp_path):
    # validation inside fit overwrites the lane states: the resumed epoch must still save and restore them
    train, val = _resume_train.data(False).split(0.25)
    n = train.plan(0).n_batches
    with pytest.raises(KeyboardInterrupt):
        sb.keras.fit_stateful(_resume_train.model(False), train, validation=val, epochs=2, backup_dir=tmp_path / "b",
                              save_freq=1, callbacks=[_Stop(n + 2)], verbose=0)
    train, val = _resume_train.data(False).split(0.25)
    model = _resume_train.model(False)
    hist = sb.keras.fit_stateful(model, train, validation=val, epochs=2, backup_dir=tmp_path / "b", save_freq=1,
                                 verbose=0)
    assert not (tmp_path / "b").exists()
    train, val = _resume_train.data(False).split(0.25)
    ref = _resume_train.model(False)
    ref_hist = sb.keras.fit_stateful(ref, train, validation=val, epochs=2, verbose=0)
    for a, b in zip(ref.weights + ref.optimizer.variables, model.weights + model.optimizer.variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b.value), keras.ops.convert_to_numpy(a.value), atol=1e-6)
    for a, b in zip(sb.keras.KerasState(ref).snapshot(), sb.keras.KerasState(model).snapshot()):
        np.testing.assert_allclose(b, a, atol=1e-6)
    assert hist.epoch == [1]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(hist.history[key], ref_hist.history[key][1:], atol=1e-6)


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize("save_freq", [0, -3, True, 1.5, "batch", None, "1"])
def test_bad_save_freq_is_refused_with_a_fix(tmp_path, save_freq):
    with pytest.raises(ParameterError, match="save_freq must be 'epoch' or a positive number.*\n  Fix: pass save_freq"):
        sb.keras.fit_stateful(_resume_train.model(False), _resume_train.data(False), backup_dir=tmp_path,
                              save_freq=save_freq, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_backup_dir_that_cannot_be_written_is_refused_with_a_fix(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for bad in (blocker, blocker / "sub"):
        with pytest.raises(ParameterError, match="is not a writable directory.*\n  Fix: pass a directory"):
            sb.keras.fit_stateful(_resume_train.model(False), _resume_train.data(False), backup_dir=bad, verbose=0)
    for bad in ("", 3, True):
        with pytest.raises(ParameterError, match="backup_dir must be a directory path"):
            sb.keras.fit_stateful(_resume_train.model(False), _resume_train.data(False), backup_dir=bad, verbose=0)
    with pytest.raises(ParameterError, match="initial_epoch cannot be combined with backup_dir"):
        sb.keras.fit_stateful(_resume_train.model(False), _resume_train.data(False), backup_dir=tmp_path,
                              initial_epoch=1, verbose=0)
    assert blocker.read_text() == "x"


# ---------------------------------------------------------------- mismatched or damaged backups
def test_backup_of_another_run_is_refused_not_resumed(tmp_path):
    backup = tmp_path / "b"
    _interrupted_backup(backup)
    before = (backup / BACKUP_FILE).read_bytes()
    other_data = _resume_train.data(False, values=12)
    other_seed = _resume_train.data(False, seed=6)
    keras.utils.set_random_seed(1)
    inp = keras.Input(batch_shape=(3, 5, 2))
    wider = keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(5, stateful=True, return_sequences=True)(inp)))
    wider.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    cases = [(_resume_train.model(False), other_data, {}, "data"),
             (_resume_train.model(False), other_seed, {}, "data"),
             (_resume_train.model(False), _resume_train.data(False), {"reset_on_epoch_begin": False}, "data"),
             (_resume_train.model(False), _resume_train.data(False), {"real_step_loss": False}, "data"),
             (wider, _resume_train.data(False), {}, "model")]
    for model, data, kwargs, what in cases:
        with pytest.raises(StoreError, match=f"was written for another run: its {what} differ.*\n  Fix: call with the same"):
            sb.keras.fit_stateful(model, data, epochs=2, backup_dir=backup, verbose=0, **kwargs)
    assert (backup / BACKUP_FILE).read_bytes() == before, "a refused backup is left as it was"


def test_backup_beyond_the_epochs_asked_for_is_refused(tmp_path):
    n = _resume_train.data(False).plan(0).n_batches
    _interrupted_backup(tmp_path, at=n + 2)
    with pytest.raises(ParameterError, match="stands at epoch 1, batch 2, beyond epochs=1.*\n  Fix: pass epochs > 1"):
        sb.keras.fit_stateful(_resume_train.model(False), _resume_train.data(False), epochs=1, backup_dir=tmp_path,
                              verbose=0)


def test_damaged_backup_is_refused_naming_the_file(tmp_path):
    backup = tmp_path / "b"
    _interrupted_backup(backup)
    path = backup / BACKUP_FILE
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(StoreError, match=f"the training backup '{path}' cannot be read.*\n  Fix: delete"):
        sb.keras.fit_stateful(_resume_train.model(False), _resume_train.data(False), epochs=2, backup_dir=backup, verbose=0)


# ---------------------------------------------------------------- atomic saves
def test_save_interrupted_before_the_rename_keeps_the_previous_backup(tmp_path, monkeypatch):
    b = TrainingBackup(tmp_path, {"data": "x"})
    b.save(0, 3, {"weights": [np.arange(4.0)]})

    def die(*args):
        raise KeyboardInterrupt  # the process dies after writing the temporary file, before os.replace

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        b.save(0, 5, {"weights": [np.arange(4.0) + 1]})
    monkeypatch.undo()
    header, arrays = TrainingBackup(tmp_path, {"data": "x"}).load()
    assert (header["epoch"], header["batch"]) == (0, 3) and arrays["weights"][0].tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [BACKUP_FILE], "this process' stale temporary file is removed"


def test_stale_temporary_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".{BACKUP_FILE}.{dead_pid}.1.abc.tmp"
    live = tmp_path / f".{BACKUP_FILE}.{os.getppid()}.1.abc.tmp"
    other = tmp_path / "notes.txt"
    for p in (stale, live, other):
        p.write_text("x")
    TrainingBackup(tmp_path, {})
    assert not stale.exists() and live.exists() and other.exists()


def test_concurrent_saves_from_threads_never_leave_a_broken_backup(tmp_path):
    b = TrainingBackup(tmp_path, {"data": "x"})

    def work(t):
        for i in range(10):
            b.save(t, i, {"weights": [np.full(1000, t * 100 + i, dtype=np.float32)]})

    assert run_threads(work, [(t,) for t in range(4)]) == []
    header, arrays = b.load()
    assert (arrays["weights"][0] == header["epoch"] * 100 + header["batch"]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == [BACKUP_FILE]


_WRITER = """
import sys, numpy as np
from statebatch.results.schedule import TrainingBackup
b = TrainingBackup(sys.argv[1], {"data": "x"})
print("ready", flush=True)
i = 0
while True:
    i += 1
    b.save(i, 0, {"weights": [np.full(300_000, i, dtype=np.float64)]})
"""


def test_writer_killed_mid_save_leaves_a_complete_backup(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = random.Random()
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        threading.Event().wait(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if (tmp_path / BACKUP_FILE).exists():
            header, arrays = TrainingBackup(tmp_path, {"data": "x"}).load()  # also removes the dead writer's temp file
            assert (arrays["weights"][0] == header["epoch"]).all() and arrays["weights"][0].shape == (300_000,)
            assert [p.name for p in tmp_path.iterdir()] == [BACKUP_FILE]


# ---------------------------------------------------------------- datasets resume mid-epoch
def _series(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(m), 2)).astype("float32") for m in rng.integers(5, 40, size=n)]


def _datasets():
    seqs = _series(30)
    return {
        "stateful": lambda: StatefulDataset(sb.arrange_stateful(_series(), 4, 3, shuffle=True, seed=2, jitter=1),
                                            resets_by="manual"),
        "bucket": lambda: BucketDataset(sb.bucket_batches(seqs, 4, targets=np.arange(30.0)[:, None], seed=3)),
        "windows": lambda: WindowDataset(sb.make_windows(np.random.default_rng(5).normal(size=(40, 2)), 5,
                                                         targets="next", batch_size=3, shuffle=True, seed=4)),
    }


def _epochs(ds, n_epochs):
    out = []
    for _ in range(n_epochs):
        out.append([tuple(np.array(a) for a in ds[k]) for k in range(len(ds))])
        ds.on_epoch_end()
    return out


@pytest.mark.parametrize("kind", ["stateful", "bucket", "windows"])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_dataset_resumes_mid_epoch_from_its_state_dict(kind, data):
    make = _datasets()[kind]
    full = _epochs(make(), 3)  # uninterrupted: three epochs
    epoch = data.draw(st.integers(0, 2), label="epoch")
    batch = data.draw(st.integers(0, len(full[epoch]) - 1), label="batch")
    first = make()
    _epochs(first, epoch)
    for k in range(batch):
        first[k]
    state = first.state_dict()
    assert (state["epoch"], state["batch"]) == (epoch, batch)
    second = make()  # a fresh process' dataset
    second.load_state_dict(state)
    assert len(second) == len(full[epoch]) - batch
    rest = [tuple(np.array(a) for a in second[k]) for k in range(len(second))]
    second.on_epoch_end()
    later = _epochs(second, 2 - epoch)
    want_all = full[epoch][batch:] + [b for e in full[epoch + 1:] for b in e]
    got_all = rest + [b for e in later for b in e]
    assert len(want_all) == len(got_all)
    for want, got in zip(want_all, got_all):
        assert len(want) == len(got) and all(np.array_equal(a, b) for a, b in zip(want, got))


def test_dataset_state_survives_keras_resetting_its_iterator_and_bad_states_are_refused():
    ds = _datasets()["stateful"]()
    ds.load_state_dict({"epoch": 1, "batch": 2})
    ds.on_epoch_end()  # Keras (JAX, torch) resets its epoch iterator before training: the position stays
    assert ds.state_dict()["epoch"] == 1 and len(ds) == ds._n - 2
    for bad, match in [({"epoch": 0}, "a dataset state is a dict"), ([1, 2], "a dataset state is a dict"),
                       ({"epoch": 0, "batch": 10**6}, "beyond the"), ({"epoch": -1, "batch": 0}, "epoch"),
                       ({"epoch": 0, "batch": 0, "seed": 99}, "seed 99"),
                       ({"epoch": 0, "batch": 0, "n_batches": 1}, "batches per epoch")]:
        with pytest.raises(ParameterError, match=match):
            _datasets()["stateful"]().load_state_dict(bad)
    # a state at the end of an epoch continues with the next one
    ds = _datasets()["bucket"]()
    n = len(ds)
    ds.load_state_dict({"epoch": 0, "batch": n})
    assert ds.state_dict()["epoch"] == 1 and len(ds) == n


def test_keras_backup_and_restore_is_refused_with_the_exact_alternative(tmp_path):
    # newcomer trial: BackupAndRestore restores weights at an epoch start but not the lanes' states or the
    # position in the plan; a killed and resumed run ended 0.031 away from the uninterrupted one
    arranged = sb.arrange_stateful(np.arange(200, dtype="float32").reshape(-1, 1), timesteps=5, batch_size=4)
    inp = keras.Input(batch_shape=(4, 5, 1))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.LSTM(3, stateful=True, return_sequences=True)(inp)))
    model.compile("sgd", "mse")
    with pytest.raises(ParameterError, match="backup_dir"):
        from statebatch.keras import fit_stateful

        fit_stateful(model, arranged, epochs=1, verbose=0,
                     callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "b"))])
