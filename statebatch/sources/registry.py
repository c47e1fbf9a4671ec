"""The registry of input kinds: one registration per kind of data statebatch reads.

Every entry point (``make_windows``, ``arrange_stateful``, ``bucket_batches``, the scikit-learn
adapters, the CLI) reads its input through :func:`statebatch.sources.series.as_series`, which asks
the registrations in turn: the first whose ``accepts(data)`` is true turns the data into a
:class:`~statebatch.sources.seriesset.SeriesSet` (or into another input that a registration reads,
e.g. a pandas frame). A new input kind is therefore one module and one :func:`register_input` call;
nothing above ``sources/`` changes.

Order (priority): registrations made by users are consulted first, the newest first, so a user can
take over a kind statebatch already reads (a subclass of ``numpy.ndarray``, a pandas frame with
extra meaning); then the built-in kinds in their fixed rank: a ready ``SeriesSet``, prepared stores
(``StoredSeries``), Dask collections, Zarr arrays, row sources, polars/pyarrow, sktime's nested
panels, pandas frames and series, lists of series, and last the catch-all for numpy arrays and
anything ``numpy.asarray`` reads (objects with ``__array__``, nested lists of numbers). An input no
registration accepts is refused with an error that names :func:`register_input`.

``accepts`` recognises a kind by the module and class name of its type, so that a heavy library
(pandas, polars, dask, zarr) is never imported to ask whether a value is one of its types.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover - types only
    from .options import InputOptions

__all__ = ["InputKind", "register_input", "unregister_input", "registered_inputs", "find_input",
           "reader_for_suffix", "input_suffixes", "type_is", "holds_many", "is_own_kind"]

#: Modules holding the built-in registrations, imported on the first look-up (a built-in kind is one
#: module with one ``register_input`` call, and its name here).
_BUILTIN_MODULES = ("seriesset", "npy", "dask_input", "zarr", "frames", "pandas_frames", "arrays")


@dataclass(frozen=True)
class InputKind:
    """One registered input kind.

    Attributes
    ----------
    name : str
        Unique name (used by :func:`unregister_input` and in messages).
    accepts : callable ``(data) -> bool``
        Whether ``data`` is of this kind (cheap; no heavy import).
    to_series : callable ``(data, options, what) -> SeriesSet | other input``
        Reads the data with the :class:`~statebatch.InputOptions`; ``what`` names it in messages.
        It may return another input that a registration reads (a pandas frame, a numpy array).
    suffixes : tuple of str
        File suffixes (lower case, with the dot) the CLI reads with ``read_file``.
    read_file : callable ``(path) -> data``, optional
        Reads such a file into a value ``to_series`` accepts.
    many : bool
        The kind always holds a set of series (even a set of one), as a prepared store does, so
        ``bucket_batches`` does not take it for one long series.
    native : bool
        Built-in kinds that pandas/numpy consumers (scikit-learn adapters, forecasting) read as they
        are; any other kind is converted by ``to_series`` first.
    rank : int, optional
        Built-in kinds' place in the fixed order; ``None`` for users' registrations.
    """

    name: str
    accepts: Callable[[Any], bool]
    to_series: Callable[[Any, "InputOptions", str], Any]
    suffixes: tuple[str, ...] = ()
    read_file: Callable[[Path], Any] | None = None
    many: bool = False
    native: bool = False
    rank: int | None = None


_USER: list[InputKind] = []  # newest first
_BUILTIN: list[InputKind] = []  # sorted by rank
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{mod}")


def register_input(
    accepts: Callable[[Any], bool],
    to_series: Callable[[Any, "InputOptions", str], Any],
    *,
    name: str,
    suffixes: Sequence[str] = (),
    read_file: Callable[[Path], Any] | None = None,
    many: bool = False,
    _rank: int | None = None,
    _native: bool = False,
) -> InputKind:
    """Teach every statebatch entry point (and the CLI) to read a new kind of input.

    Parameters
    ----------
    accepts : callable ``(data) -> bool``
        Recognises the kind. Check the type by module and class name (``type(data).__module__``)
        rather than importing a heavy library.
    to_series : callable ``(data, options, what) -> SeriesSet`` or another input
        Reads the data: ``options`` is the :class:`~statebatch.InputOptions` the caller gave
        (``id_col``, ``dtype``...), ``what`` names the data in messages. Returning a pandas frame, a
        numpy array or a list of arrays hands the rest (options included) to the built-in kinds.
    name : str
        Unique name of the kind.
    suffixes : sequence of str, optional
        File suffixes (e.g. ``(".arrow", ".feather")``) the CLI reads with ``read_file``.
    read_file : callable ``(path) -> data``, optional
        Needed with ``suffixes``: reads a file into a value ``accepts`` recognises (or any other
        input statebatch reads).
    many : bool, default False
        The kind always holds a set of series (even one), so ``bucket_batches`` takes it as such.

    Returns
    -------
    InputKind
        The registration; :func:`unregister_input` with its name removes it.

    Users' registrations are consulted before the built-in kinds, the newest first.

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> class Columns:
    ...     def __init__(self, **cols): self.cols = cols
    >>> kind = sb.register_input(lambda d: isinstance(d, Columns),
    ...                          lambda d, options, what: np.column_stack(list(d.cols.values())),
    ...                          name="columns")
    >>> w = sb.make_windows(Columns(a=np.arange(5.0), b=np.arange(5.0)), timesteps=3)
    >>> w.X.shape
    (3, 3, 2)
    >>> sb.unregister_input("columns").name
    'columns'
    """
    if not isinstance(name, str) or not name:
        raise ParameterError(f"name must be a non-empty string, got {name!r}.", "pass name='my_format'.")
    if not callable(accepts) or not callable(to_series):
        raise ParameterError("accepts and to_series must be callables.",
                             "pass accepts=lambda data: ..., to_series=lambda data, options, what: ....")
    if isinstance(suffixes, str):
        suffixes = (suffixes,)
    sfx = tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes)
    if sfx and read_file is None:
        raise ParameterError(f"input kind {name!r} names file suffixes {list(sfx)} but no read_file.",
                             "pass read_file=lambda path: ... that reads such a file.")
    if _rank is None:
        _load_builtins()  # a user's name must not shadow a built-in one
    if any(k.name == name for k in _USER + _BUILTIN):
        raise ParameterError(f"an input kind named {name!r} is registered already.",
                             f"choose another name, or statebatch.unregister_input({name!r}) first.")
    kind = InputKind(name, accepts, to_series, sfx, read_file, bool(many), bool(_native), _rank)
    if _rank is None:
        _USER.insert(0, kind)
    else:
        _BUILTIN.append(kind)
        _BUILTIN.sort(key=lambda k: k.rank or 0)
    return kind


def unregister_input(name: str) -> InputKind:
    """Remove a registration made with :func:`register_input` (built-in kinds stay).

    Examples
    --------
    >>> import statebatch as sb
    >>> _ = sb.register_input(lambda d: False, lambda d, o, w: d, name="nothing")
    >>> sb.unregister_input("nothing").name
    'nothing'
    """
    for i, kind in enumerate(_USER):
        if kind.name == name:
            return _USER.pop(i)
    builtin = any(k.name == name for k in _BUILTIN)
    raise ParameterError(f"no input kind {name!r} was registered by register_input"
                         + (" (it is a built-in kind, which stays)." if builtin else "."),
                         f"registered kinds: {[k.name for k in _USER] or 'none'}.")


def registered_inputs() -> list[InputKind]:
    """Every input kind in the order they are asked: users' (newest first), then the built-in ones.

    Examples
    --------
    >>> import statebatch as sb
    >>> [k.name for k in sb.registered_inputs()][-2:]
    ['sequence', 'array']
    """
    _load_builtins()
    return list(_USER) + list(_BUILTIN)


def find_input(data: Any) -> InputKind | None:
    """The first registration that accepts ``data``, or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> find_input(np.zeros(3)).name
    'array'
    """
    for kind in registered_inputs():
        if kind.rank is not None:
            if kind.accepts(data):
                return kind
            continue
        try:  # a user's accepts sees every input statebatch is given: its errors are named, not passed on
            accepted = kind.accepts(data)
        except Exception as exc:  # noqa: BLE001 - whatever it raised, say which registration it was
            raise ParameterError(f"the accepts of input kind {kind.name!r} raised {type(exc).__name__}: {exc} (given "
                                 f"a {type(data).__name__}).", "make it return False for inputs it does not read, "
                                 f"or statebatch.unregister_input({kind.name!r}).") from exc
        if accepted:
            return kind
    return None


def holds_many(data: Any) -> bool:
    """Whether ``data``'s kind always holds a set of series (a list, a prepared store), even of one.

    Examples
    --------
    >>> import numpy as np
    >>> holds_many([np.zeros(3)]), holds_many(np.zeros(3))
    (True, False)
    """
    kind = find_input(data)
    return kind is not None and kind.many


def is_own_kind(data: Any) -> bool:
    """Whether a registration other than the numpy catch-alls (``"array"``, ``"sequence"``) reads
    ``data``: such a value is passed on as it is, never through ``numpy.asarray``.

    Examples
    --------
    >>> import numpy as np
    >>> is_own_kind(np.zeros(3)), is_own_kind([1.0, 2.0])
    (False, False)
    """
    kind = find_input(data)
    return kind is not None and kind.name not in ("array", "sequence")


def reader_for_suffix(suffix: str) -> Callable[[Path], Any] | None:
    """The ``read_file`` registered for a file suffix (``".toycsv"``), or ``None``.

    Examples
    --------
    >>> reader_for_suffix(".no-such-suffix") is None
    True
    """
    suffix = suffix.lower()
    for kind in registered_inputs():
        if suffix in kind.suffixes:
            return kind.read_file
    return None


def input_suffixes() -> list[str]:
    """Every file suffix a registration reads (for the CLI's messages).

    Examples
    --------
    >>> isinstance(input_suffixes(), list)
    True
    """
    return [s for kind in registered_inputs() for s in kind.suffixes]


def type_is(obj: Any, module: str | tuple[str, ...], *names: str) -> bool:
    """Whether ``obj``'s type comes from a module (its top package) and, if names are given, has one of
    those class names: a type test that imports nothing.

    Examples
    --------
    >>> import numpy as np
    >>> type_is(np.zeros(2), "numpy", "ndarray"), type_is(np.zeros(2), "pandas")
    (True, False)
    """
    root = type(obj).__module__.split(".")[0]
    mods = (module,) if isinstance(module, str) else module
    return root in mods and (not names or type(obj).__name__ in names)
