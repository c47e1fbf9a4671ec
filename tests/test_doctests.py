"""Every module's docstring examples run (doctest), and every public function has one.

The examples are the API reference's first line of documentation (docs/api renders them); running
them here keeps them true. ``python -m pytest tests/test_doctests.py -k results`` runs one folder's.
"""

import ast
import doctest
import importlib
import pathlib

import numpy as np
import pytest

import statebatch as sb

PACKAGE = pathlib.Path(sb.__file__).parent
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# statebatch.jax needs jax, which only the JAX environment has (make test-jax runs these)
JAX_MODULES = {"statebatch.jax", "statebatch.adapters.jax"}


@pytest.mark.parametrize("name", [pytest.param(m, marks=pytest.mark.jax_native) if m in JAX_MODULES else m
                                  for m in MODULES])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    with np.printoptions(legacy=False, precision=4, suppress=True):
        result = doctest.testmod(module, optionflags=FLAGS, report=True, verbose=False,
                                 extraglobs={"np": np, "sb": sb})
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (printed above)"


def _public_functions(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    names = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(getattr(t, "id", None) == "__all__" for t in targets) and isinstance(node.value, ast.List):
            names = {e.value for e in node.value.elts if isinstance(e, ast.Constant)}  # *_LAZY: not functions here
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and (names is None or node.name in names):
            yield node


def test_every_public_function_has_an_example_and_types():
    missing, untyped = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name.startswith("_") and path.name != "__init__.py":
            continue  # _args, _introspect, _moved: internal helpers
        for fn in _public_functions(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name}"
            doc = ast.get_docstring(fn) or ""
            if "Examples" not in doc or ">>>" not in doc:
                missing.append(where)
            args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
            if fn.returns is None or any(a.annotation is None for a in args if a.arg not in ("self", "cls")):
                untyped.append(where)
    assert not missing, f"{len(missing)} public functions without an Examples doctest:\n" + "\n".join(missing)
    assert not untyped, f"{len(untyped)} public functions without full type hints:\n" + "\n".join(untyped)
