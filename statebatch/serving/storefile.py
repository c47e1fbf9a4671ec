"""The state store's file: its format, its model signature, and the checks a file passes before its
states are used (form first, then the model it was saved for, then every array).

A file is an ``.npz`` archive: a ``meta`` entry (JSON bytes: format, ids, signature, time saved) and one
array per state (``state_<j>``, one row per id), ``prediction`` and ``steps``. The signature names no
layer: Keras names layers by how many were built before in the process, so a model rebuilt after a
restart has other names.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._args import plural
from ..errors import StatebatchWarning, StoreError
from .files import remove_stale_temps

__all__ = ["encode_store", "read_store_file", "check_signature", "check_store_arrays", "FORMAT", "OLD_FORMAT"]

FORMAT = "statebatch.StateStore/2"
# Version 1 identified states by layer paths, i.e. Keras' auto-generated names ("lstm_7"): a model
# rebuilt in a fresh process gets other names. Such files still load (with a warning) when everything
# that is not a name matches: the states' classes, shapes and dtypes, the sizes, the weights.
OLD_FORMAT = "statebatch.StateStore/1"
# Config keys that describe what a layer computes (never its name): part of the model signature.
_STRUCTURAL = ("units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias", "reset_after",
               "return_sequences", "return_state", "go_backwards", "stateful", "unroll", "merge_mode", "filters",
               "kernel_size", "strides", "padding", "dilation_rate", "rate", "axis", "epsilon", "target_shape",
               "dims", "output_dim", "input_dim", "pool_size", "data_format", "mask_value", "negative_slope",
               "max_value", "threshold", "center", "scale", "output_mode", "n")


def _structure(layer: Any) -> list:
    """What ``layer``'s sub-layers compute, in order, without any name: ``[class, structural config,
    children]`` per layer; nested models are inlined (a model in a model computes what its layers do)
    and input layers skipped."""
    out = []
    flatten = getattr(layer, "_flatten_layers", None)
    children = list(flatten(include_self=False, recursive=False)) if flatten is not None else []
    import keras

    for child in children:
        kind = type(child).__name__
        if kind == "InputLayer":
            continue
        if isinstance(child, keras.Model):
            out.extend(_structure(child))
            continue
        try:
            config = child.get_config()
        except Exception:  # a custom layer without get_config: its class and children still count
            config = {}
        keep = {k: config[k] for k in _STRUCTURAL if k in config}
        out.append([kind, keep, _structure(child)])
    return out


def _plain_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists; anything else becomes its str)."""
    return json.loads(json.dumps(value, default=str))


def _model_signature(model: Any, spec: Any, n_features: int, n_outputs: int) -> dict:
    """What a saved file must match (see :meth:`StateStore.signature`): the model's structure, its states,
    the input/output sizes, the weights' shapes and dtypes and a hash of their values; no name."""
    import keras

    h = hashlib.sha256()
    shapes = []
    # Recurrent state variables and random-seed counters change with every call: not part of the model.
    skip = {id(v) for info in spec for v in (info.layer.states or []) if v is not None}
    for w in model.weights:  # in model order, which is the layers' order: names play no part
        if id(w) in skip or "seed_generator" in str(getattr(w, "path", "")) or "rnn_state" in str(w.name):
            continue
        a = np.ascontiguousarray(keras.ops.convert_to_numpy(w.value))
        shapes.append([list(a.shape), a.dtype.str])
        h.update(a.tobytes())
    return _plain_json({
        "layers": _structure(model),
        "states": [[s.layer_class, s.kind, s.direction, list(s.shape), s.dtype] for s in spec],
        "n_features": n_features, "n_outputs": n_outputs, "weights": shapes,
        "weights_sha256": h.hexdigest()})


def encode_store(meta: dict, arrays: dict[str, np.ndarray]) -> memoryview:
    """The bytes of a store file: ``meta`` as a JSON entry next to the ``arrays`` of an ``.npz`` archive.

    Examples
    --------
    >>> import numpy as np
    >>> data = encode_store({"format": FORMAT, "ids": ["a"]}, {"steps": np.array([3])})
    >>> bytes(data[:2])  # a zip archive, as np.savez writes it
    b'PK'
    """
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)  # type: ignore[arg-type]
    return buf.getbuffer()



def read_store_file(path: Path) -> tuple[dict, dict]:
    """The metadata and arrays of a state store file, checked for form (not yet against a model).

    Every failure is a :class:`~statebatch.errors.StoreError` naming the file; temporary files of dead
    writers next to ``path`` are removed first.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
    >>> _ = path.write_bytes(encode_store({"format": FORMAT, "ids": ["a"]}, {"steps": np.array([3])}))
    >>> meta, arrays = read_store_file(path)
    >>> meta["ids"], arrays["steps"].tolist()
    (['a'], [3])
    >>> _ = path.write_bytes(b"not a store")
    >>> read_store_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    statebatch.errors.StoreError: '...s.npz' is not a state store file (not a zip/.npz archive; 11 bytes).
      Fix: pass a file written by StateStore.save ...
    """
    where = f"{str(path)!r}"
    remove_stale_temps(path)
    fix = "pass a file written by StateStore.save (it may be truncated, damaged or another file)."
    if path.is_dir():
        raise StoreError(f"{where} is a directory, not a state store file.", "pass the path given to store.save().")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise StoreError(f"no state store file at {where}.", "pass the path given to store.save().") from None
    except OSError as exc:
        raise StoreError(f"cannot read {where} ({exc.strerror or exc}).", "check the path and its permissions.") from None
    if data[:6] == b"\x93NUMPY":
        raise StoreError(f"{where} is a single .npy array, not a state store (.npz written by StateStore.save).", fix)
    if data[:2] != b"PK":
        raise StoreError(f"{where} is not a state store file (not a zip/.npz archive; {len(data)} bytes).", fix)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            names = set(z.files)
            if "meta" not in names:
                raise StoreError(f"{where} is not a state store file (no 'meta' entry; it holds {sorted(names)[:6]}).",
                                 fix)
            raw = z["meta"]
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise StoreError(f"{where} has a malformed 'meta' entry ({raw.dtype}, shape {raw.shape}).", fix)
            meta = json.loads(bytes(raw).decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, OLD_FORMAT):
                got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise StoreError(f"{where} is not a state store file of a known format (format {got!r}; this version "
                                 f"reads {FORMAT} and {OLD_FORMAT}).", fix)
            arrays = {k: z[k] for k in names - {"meta"}}
    except StoreError:
        raise
    except Exception as exc:  # zipfile, zlib, numpy, json, unicode: all mean "not a whole store file"
        raise StoreError(f"{where} is not a readable state store file ({type(exc).__name__}: {exc}).", fix) from None
    ids = meta.get("ids")
    if not isinstance(ids, list) or any(isinstance(i, bool) or not isinstance(i, (str, int)) for i in ids):
        raise StoreError(f"{where} holds malformed series ids (a list of str/int was expected, got "
                         f"{str(ids)[:80]}).", fix)
    if len(set(ids)) != len(ids):
        raise StoreError(f"{where} lists a series id more than once.", fix)
    return meta, arrays


def check_signature(where: str, meta: dict, mine: dict, check_weights: bool = True) -> None:
    """Refuse a file saved for another model: ``meta``'s signature against the model's (``mine``).

    Everything but the weight values must match (with ``check_weights``, those too: states computed
    with other weights do not continue these). A file of the older format, whose signature named
    the layers, is compared without names and accepted with a
    :class:`~statebatch.errors.StatebatchWarning`.

    Examples
    --------
    >>> mine = {"layers": [["LSTM", {"units": 3}, []]], "states": [], "n_features": 2, "n_outputs": 2,
    ...         "weights": [[[2, 12], "<f4"]], "weights_sha256": "ab"}
    >>> check_signature("'s.npz'", {"format": FORMAT, "signature": mine}, mine)  # the same model: passes
    >>> check_signature("'s.npz'", {"format": FORMAT, "signature": {**mine, "n_features": 3}}, mine)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    statebatch.errors.StoreError: 's.npz' was saved for another model: its n_features differ (3 vs 2).
      Fix: load it with the model it was saved with ...
    """
    theirs = meta.get("signature")
    if not isinstance(theirs, dict):
        raise StoreError(f"{where} holds no model signature.", "save the store again with StateStore.save.")
    if meta["format"] == OLD_FORMAT:  # layer names ignored: [name, class, shape, dtype] -> [class, shape, dtype]
        old = theirs.get("states")
        theirs = {**theirs, "states": [list(s[1:]) for s in old] if isinstance(old, list) and all(
            isinstance(s, list) and len(s) == 4 for s in old) else old}
        mine = {**mine, "states": [[s[0], s[3], s[4]] for s in mine["states"]]}
        keys: tuple[str, ...] = ("states", "n_features", "n_outputs", "weights")
    else:
        keys = ("layers", "states", "n_features", "n_outputs", "weights")
    for key in keys:
        if theirs.get(key) != mine[key]:
            raise StoreError(
                f"{where} was saved for another model: its {key} differ ({str(theirs.get(key))[:160]} vs "
                f"{str(mine[key])[:160]}).", "load it with the model it was saved with (the same layers, in the "
                "same order, with the same sizes; layer names do not matter).")
    if check_weights and theirs.get("weights_sha256") != mine["weights_sha256"]:
        raise StoreError(f"{where} was saved with other weight values than the model's: the states were "
                         "computed by other weights.",
                         "load it with the model it was saved with, or pass check_weights=False to continue from "
                         "them anyway (e.g. after fine-tuning).")
    if meta["format"] == OLD_FORMAT:
        warnings.warn(f"{where} has the older format {OLD_FORMAT}, whose signature named the layers; everything "
                      "else (states, sizes, weights) matches this model, so it was loaded. Save the store again to "
                      "write the current format.", StatebatchWarning, stacklevel=3)


def check_store_arrays(where: str, arrays: dict[str, np.ndarray], ids: list, expected: dict) -> None:
    """Refuse a file whose arrays do not fit the model: missing or extra arrays, shapes, dtypes, NaN/inf
    states, negative step counts. ``expected`` maps each array's name to ``(shape, dtype)`` (``dtype``
    None: any float dtype; ``steps``: any integer dtype).

    Examples
    --------
    >>> import numpy as np
    >>> expected = {"state_0": ((1, 3), np.dtype("float32")), "prediction": ((1, 2), None), "steps": ((1,), None)}
    >>> good = {"state_0": np.zeros((1, 3), "float32"), "prediction": np.zeros((1, 2)), "steps": np.array([4])}
    >>> check_store_arrays("'s.npz'", good, ["a"], expected)
    >>> check_store_arrays("'s.npz'", {**good, "steps": np.array([-1])}, ["a"], expected)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    statebatch.errors.StoreError: 's.npz' holds negative step counts (series 'a': -1).
      Fix: the file is damaged ...
    """
    fix = "the file is damaged or was not written by StateStore.save: save the store again (or restore a backup)."
    n = len(ids)
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing or extra:
        raise StoreError(f"{where} does not hold the arrays a store of this model has"
                         f"{': missing ' + str(missing) if missing else ''}"
                         f"{'; unexpected ' + str(extra) if extra else ''}.", fix)
    for key, (shape, dtype) in expected.items():
        a = arrays[key]
        if a.shape != shape:
            raise StoreError(f"{where} holds {key} of shape {a.shape}, but {shape} for its {plural(n, 'id')} and "
                             "this model.", fix)
        if key == "steps":
            if a.dtype.kind not in "iu":
                raise StoreError(f"{where} holds step counts of dtype {a.dtype}, not integers.", fix)
            if n and int(a.min()) < 0:
                raise StoreError(f"{where} holds negative step counts (series {ids[int(np.argmin(a))]!r}: "
                                 f"{int(a.min())}).", fix)
            continue
        if (dtype is not None and a.dtype != dtype) or a.dtype.kind != "f":
            raise StoreError(f"{where} holds {key} of dtype {a.dtype}, but the model's is "
                             f"{dtype or 'a float dtype'}.", fix)
        if not np.isfinite(a).all():
            bad = ids[int(np.nonzero((~np.isfinite(a.reshape(n, -1))).any(axis=1))[0][0])]
            raise StoreError(f"{where} holds NaN/inf in {key} (series {bad!r} first); such a state would poison "
                             "every later step of its series.", fix)
