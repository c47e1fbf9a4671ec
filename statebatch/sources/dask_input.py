"""Dask collections as input: one registration, ``"dask"``, that imports Dask only when one is given.

A Dask array (one series) or a long Dask DataFrame (``id_col``) is prepared into a temporary sharded
store by Dask tasks (:func:`statebatch.sources.dask.prepare`), whose batches are then read with
bounded memory. The registration lives apart from :mod:`statebatch.sources.dask`, which imports
Dask at its top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import register_input, type_is

if TYPE_CHECKING:  # pragma: no cover - types only
    from .options import InputOptions
    from .seriesset import SeriesSet


def _dask_to_series(data: Any, options: "InputOptions", what: str) -> "SeriesSet":
    """Prepared into a temporary store with the frame options, then read as stored series."""
    from .dask import as_stored
    from .series import as_series

    prepared = as_stored(data, gaps=options.gaps, id_col=options.id_col, time_col=options.time_col,
                         feature_cols=options.feature_cols, target_cols=options.target_cols, dtype=options.dtype)
    return as_series(prepared, what=what)


register_input(lambda d: type_is(d, ("dask", "dask_expr")), _dask_to_series, name="dask", _rank=30, _native=True)
