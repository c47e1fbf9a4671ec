"""The package's shape: layers without upward imports, dtypes kept on every input path."""

import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import statebatch as sb

PACKAGE = pathlib.Path(sb.__file__).parent

# Each module's layer; a module may import only modules of a strictly lower layer (also inside
# functions). A new module must be placed here, which is the point: decide where it belongs.
LAYERS = {
    "errors": 0, "_introspect": 0, "datasets": 0,
    "_args": 1,
    "source": 2, "plans": 2, "plans.base": 2, "timeindex": 2,
    "plans.windows": 3, "plans.lanes": 3, "plans.buckets": 3, "store": 3,
    "zarr": 4, "materialise": 4, "dask": 4, "frames": 4,
    "series": 5,
    "result": 6, "schedule": 6, "forecast": 6,
    "windows": 7, "stateful": 7,
    "bucketing": 8, "feed": 8,
    "layout": 2,
    "checks": 9,
    "validate": 10, "explain": 10,
    "keras": 11, "sklearn": 11, "plot": 11, "torch": 11, "inference": 11, "jax": 11,
    "statestore": 12,
    "__init__": 13,
    "cli": 14, "demo": 14,
    "__main__": 15,
}


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


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
                if candidate in LAYERS:
                    found.add(candidate)  # `from . import checks` imports the module checks
                else:
                    found.add(base or "__init__")
    return found


def test_every_module_has_a_layer_and_imports_only_lower_layers():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    upward = []
    for path in files:
        name = _module_name(path)
        assert name in LAYERS, f"statebatch/{path.relative_to(PACKAGE)} has no layer: add it to LAYERS"
        for target in _imports(path, name):
            assert target in LAYERS, f"{name} imports unknown module {target}"
            if LAYERS[target] >= LAYERS[name]:
                upward.append(f"{name} (layer {LAYERS[name]}) imports {target} (layer {LAYERS[target]})")
    assert not upward, "\n".join(upward)


def test_the_walker_sees_imports_inside_functions():
    # the check must be able to fail: a function-level upward import is reported
    src = PACKAGE / "series.py"
    tree_imports = _imports(src, "series")
    assert {"dask", "zarr", "store", "source", "errors"} <= tree_imports


def test_importing_statebatch_loads_no_heavy_dependency():
    heavy = ["keras", "tensorflow", "jax", "torch", "dask", "zarr", "polars", "matplotlib", "pyarrow"]
    code = ("import sys, statebatch, statebatch.windows, statebatch.stateful, statebatch.bucketing; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32"])
def test_dtype_kept_across_numpy_dask_store_and_zarr(tmp_path, dtype):
    import dask.array as da
    import zarr

    x = (np.arange(240).reshape(120, 2) % 50).astype(dtype)
    from statebatch.store import write_npy

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
