"""statebatch errors raised inside a Keras loop, given back to the user as raised.

On TensorFlow, Keras runs a dataset's ``__getitem__`` inside tf.data, which re-raises any exception as an
``InvalidArgumentError`` ("Graph execution error ... PyFunc") with the original message inside. The
datasets record the statebatch error they raise (:func:`_recorded`), so that statebatch's own entry
points (``fit_stateful``, ``predict``, ``evaluate``) can raise the original instead (:func:`_original_errors`).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

from ...errors import StatebatchError

_LAST_ERROR: list[StatebatchError | None] = [None]


def _recorded(getitem: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap a dataset's ``__getitem__`` so that a statebatch error it raises is recorded first."""
    @functools.wraps(getitem)
    def wrapper(self: Any, k: Any) -> Any:
        try:
            return getitem(self, k)
        except StatebatchError as exc:
            _LAST_ERROR[0] = exc
            raise
    return wrapper


@contextlib.contextmanager
def _original_errors() -> Iterator[None]:
    """Re-raise a statebatch error that a Keras loop wrapped (see ``_LAST_ERROR``)."""
    _LAST_ERROR[0] = None
    try:
        yield
    except StatebatchError:
        raise
    except Exception as exc:
        recorded_error, _LAST_ERROR[0] = _LAST_ERROR[0], None
        if recorded_error is not None:
            raise recorded_error from exc
        raise
