"""Series ids as the state store takes them: distinct str/int values, read exactly once, in an order."""

from __future__ import annotations

import collections.abc as abc
from typing import Any

import numpy as np

from ..errors import ParameterError

__all__ = ["check_ids"]


def _check_id(sid: Any) -> Any:
    # bool is refused although it is an int: True == 1 would silently address series 1.
    if isinstance(sid, (bool, np.bool_)) or not isinstance(sid, (str, int, np.integer)):
        raise ParameterError(f"series id {sid!r} ({type(sid).__name__}) is not a str or int.",
                             "use str or int series ids (they are saved with the states).")
    if isinstance(sid, np.integer):
        return int(sid)
    return str(sid) if isinstance(sid, str) and type(sid) is not str else sid  # np.str_ -> str (saved as JSON)


def check_ids(ids: Any) -> list:
    """``ids`` as a list of distinct str/int series ids, read exactly once.

    A generator or iterator is consumed here and only here, so every later use sees the same ids.
    Unordered collections (``set``, ``frozenset``) are refused: values are paired with ids by
    position, and a set's order is arbitrary. A ``dict``'s keys view keeps insertion order and is
    accepted; a mapping itself is refused (ids or values?).

    Examples
    --------
    >>> import numpy as np
    >>> check_ids(iter(["a", np.int64(7)]))
    ['a', 7]
    >>> check_ids({"b", "a"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    statebatch.errors.ParameterError: ids is a set, whose order is arbitrary: ...
    """
    if isinstance(ids, (str, bytes, int, np.integer, np.str_)) and not isinstance(ids, (bool, np.bool_)):
        shown = ids.decode(errors="replace") if isinstance(ids, bytes) else ids
        raise ParameterError(f"ids must be a list of series ids, got the single id {ids!r}.", f"pass [{shown!r}].")
    if isinstance(ids, abc.Mapping):
        raise ParameterError(f"ids is a mapping ({type(ids).__name__}): it is unclear whether its keys are the ids.",
                             "pass list(mapping) for its keys (insertion order) and the values in that order.")
    if isinstance(ids, abc.Set) and not isinstance(ids, abc.KeysView):
        raise ParameterError(
            f"ids is a {type(ids).__name__}, whose order is arbitrary: values are paired with ids by position, so "
            "each series could receive another series' values.",
            "pass a list (e.g. sorted(ids)) and the values in the same order.")
    if isinstance(ids, np.ndarray) and ids.ndim != 1:
        raise ParameterError(f"ids has shape {ids.shape}; a 1-D list of ids was expected.", "pass a flat list of ids.")
    try:
        out = list(ids)
    except TypeError:
        raise ParameterError(f"ids must be a list of series ids, got {type(ids).__name__}.",
                             "pass a list (or array) of str/int ids.") from None
    out = [_check_id(i) for i in out]
    if len(set(out)) != len(out):
        seen, dup = set(), []
        for i in out:
            if i in seen and i not in dup:
                dup.append(i)
            seen.add(i)
        raise ParameterError(f"series ids repeat in one call: {dup[:5]}.",
                             "pass each series once per call (step twice for two steps, or pass (n, k, F) values).")
    return out
