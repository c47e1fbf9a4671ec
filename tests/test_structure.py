"""The package's shape: layers without upward imports, dtypes kept on every input path."""

import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import statebatch as sb

PACKAGE = pathlib.Path(sb.__file__).parent

# The floors of the building, read from the folders: a module's floor is its folder's (top-level
# files are the core, floor 0, or entry points, the top floor). A module may import modules of lower
# floors and of its own folder, never a higher floor, and the import graph has no cycle. A new
# folder must be given a floor here, which is the point: decide where it belongs (docs/design.md).
FLOORS = ["sources", "plans", "materialise", "results", "checking", "adapters", "serving"]
CORE = {"errors", "_args", "_introspect", "datasets"}   # floor 0: needed by everything, import nothing above
ENTRY = len(FLOORS) + 1                                 # __init__, the public thin modules, cli, demo


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p) for p in PACKAGE.rglob("*.py")}


def floor_of(name: str) -> int:
    """A module's floor, from its folder alone."""
    head = name.split(".")[0]
    if "." in name or head in FLOORS:
        assert head in FLOORS, f"statebatch/{head}/ has no floor: add it to FLOORS (and docs/design.md)"
        return FLOORS.index(head) + 1
    return 0 if name in CORE else ENTRY


def _imports(path: pathlib.Path, name: str) -> set[str]:
    """statebatch modules imported anywhere in the file (module level or inside functions)."""
    package_parts = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__":
        package_parts = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "statebatch" or alias.name.startswith("statebatch."):
                    found.add(alias.name.removeprefix("statebatch").lstrip(".") or "__init__")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and (node.module == "statebatch" or node.module.startswith("statebatch.")):
                    base = node.module.removeprefix("statebatch").lstrip(".")
                else:
                    continue
            else:
                base_parts = package_parts[: len(package_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                if candidate in MODULES:
                    found.add(candidate)  # `from . import checks` imports the module checks
                else:
                    found.add(base or "__init__")
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p, _module_name(p)) - {_module_name(p)} for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_imports_only_its_own_folder_and_lower_floors():
    graph = _graph()
    assert len(graph) > 30
    upward = []
    for name, targets in graph.items():
        for target in targets:
            assert target in MODULES, f"{name} imports unknown module {target}"
            if floor_of(target) > floor_of(name):
                upward.append(f"{name} (floor {floor_of(name)}) imports {target} (floor {floor_of(target)})")
            elif floor_of(target) == floor_of(name) and 0 < floor_of(name) < ENTRY \
                    and target.split(".")[0] != name.split(".")[0]:
                upward.append(f"{name} imports {target}: another folder on the same floor")
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith("__init__") or nxt == "__init__":
                continue  # the package itself (`import statebatch` in the demo, an entry point)
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [node, nxt])
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_floor_rule_can_fail():
    # the checks must be able to fail: an upward import inside a function is seen, and a folder
    # nobody placed has no floor
    dask_input = PACKAGE / "sources" / "dask_input.py"  # imports .dask and .series inside a function
    assert {"sources.dask", "sources.series", "sources.registry"} <= _imports(dask_input, "sources.dask_input")
    assert floor_of("serving.statestore") > floor_of("adapters.keras") > floor_of("results.stateful") > floor_of("errors")
    with pytest.raises(AssertionError, match="no floor"):
        floor_of("newfolder.module")
    fake = {"results.windows": {"adapters.keras"}}
    assert any(floor_of(t) > floor_of(n) for n, ts in fake.items() for t in ts)


def test_public_paths_are_thin_modules_over_the_folders():
    # the import paths users have keep working, and hold no code of their own
    import importlib

    for public, impl in [("keras", "adapters.keras"), ("torch", "adapters.torch"), ("jax", "adapters.jax"),
                         ("sklearn", "adapters.sklearn"), ("plot", "adapters.plot"), ("dask", "sources.dask")]:
        tree = ast.parse((PACKAGE / f"{public}.py").read_text())
        assert all(isinstance(n, (ast.ImportFrom, ast.Expr)) for n in tree.body), public
        assert graph_of_public(public) == {impl}, public
        if public in ("keras", "torch", "jax"):
            continue  # imported by their own backend tests (heavy)
        mod = importlib.import_module(f"statebatch.{public}")
        for n in mod.__all__:
            assert getattr(mod, n) is getattr(importlib.import_module(f"statebatch.{impl}"), n)


def graph_of_public(public: str) -> set[str]:
    return _imports(PACKAGE / f"{public}.py", public)


def test_design_page_names_every_folder():
    text = (PACKAGE.parent / "docs" / "design.md").read_text()
    for folder in FLOORS:
        assert f"statebatch/{folder}/" in text or f"`{folder}/`" in text, folder


def test_importing_statebatch_loads_no_heavy_dependency():
    heavy = ["keras", "tensorflow", "jax", "torch", "dask", "zarr", "polars", "matplotlib", "pyarrow"]
    code = ("import sys, statebatch, statebatch.results.windows, statebatch.results.stateful, statebatch.results.bucketing; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32"])
def test_dtype_kept_across_numpy_dask_store_and_zarr(tmp_path, dtype):
    import dask.array as da
    import zarr

    x = (np.arange(240).reshape(120, 2) % 50).astype(dtype)
    from statebatch.sources.npy import write_npy

    store = write_npy(tmp_path / "x.npy", [x[:70], x[70:]], x.shape, x.dtype)
    z = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=x.shape, chunks=(32, 2), dtype=dtype)
    z[:] = x
    inputs = {"numpy": x, "dask": da.from_array(x, chunks=(50, 2)), "store": store, "zarr": z}
    for kind, data in inputs.items():
        w = sb.make_windows(data, 10, batch_size=8, shuffle=False)
        assert w.X.dtype == np.dtype(dtype), kind
        np.testing.assert_array_equal(w.X[3], x[3:13], err_msg=kind)
        a = sb.arrange_stateful(data, 5, 4)
        assert a.X.dtype == np.dtype(dtype), kind
        np.testing.assert_array_equal(a.X[0, :, 0], x[:5, 0], err_msg=kind)


def test_old_module_paths_import_for_one_release_with_a_warning():
    code = ("import warnings, sys; warnings.simplefilter('error', FutureWarning)\n"
            "import statebatch as sb\n"
            "try:\n    import statebatch.store\nexcept FutureWarning as w:\n    print('warned:', w)\n"
            "warnings.simplefilter('ignore', FutureWarning)\n"
            "import statebatch.store as st, statebatch.windows as win\n"
            "print(st.open_prepared is sb.open_prepared, win.make_windows is sb.make_windows,\n"
            "      sb.layout.detect_layout is sb.detect_layout, callable(sb.validate), callable(sb.explain))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "warned: statebatch.store moved to statebatch.sources.npy" in out and "removed in 0.4" in out
    assert out.strip().endswith("True True True True True")


MAX_MODULE_LINES, MAX_FUNCTION_CODE_LINES = 600, 80


def _code_lines(lines: list[str], fn: ast.AST) -> int:
    """Lines of code of a function: blank lines, comments and its docstring not counted."""
    doc: set[int] = set()
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        doc = set(range(first.lineno, first.end_lineno + 1))
    return sum(1 for i in range(fn.lineno, fn.end_lineno + 1)
               if i not in doc and lines[i - 1].strip() and not lines[i - 1].strip().startswith("#"))


def test_modules_and_functions_stay_small():
    # a newcomer reads a module in one sitting and a function on one screen
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().split("\n")
        where = path.relative_to(PACKAGE.parent)
        if len(lines) > MAX_MODULE_LINES:
            too_long.append(f"{where}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(lines, node)
                if n > MAX_FUNCTION_CODE_LINES:
                    too_long.append(f"{where}:{node.lineno} {node.name}: {n} lines of code")
    assert not too_long, "\n".join(too_long)


def test_the_size_rule_can_fail():
    src = "def f():\n    '''doc\n    more'''\n" + "    x = 1\n" * 81 + "    # a comment\n\n"
    fn = ast.parse(src).body[0]
    assert _code_lines(src.split("\n"), fn) == 82
