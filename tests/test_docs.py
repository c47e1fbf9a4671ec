"""The docs stay true: every path docs/design.md and the README name exists, every module of the
layer table is a module of the package, and every guide the README links to exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_path_design_md_names_exists():
    text = (ROOT / "docs" / "design.md").read_text()
    paths = set(re.findall(r"`((?:statebatch|tests|bench|docs|notebooks|examples)/[\w./-]+)`", text))
    assert paths, "design.md names no path: the pattern is wrong"
    missing = sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"docs/design.md names paths that do not exist: {missing}"


def _folder_table() -> dict[str, set[str]]:
    """design.md's folder table: folder (or core/entry) -> the modules its row names."""
    text = (ROOT / "docs" / "design.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| (core|entry|`([a-z_]+)/`) \| (.*?) \|", line)
        if m:
            rows[m.group(2) or m.group(1)] = set(re.findall(r"`([a-z_]+)`", m.group(3)))
    return rows


def test_the_folder_table_names_every_module_and_only_modules_that_exist():
    rows = _folder_table()
    assert {"core", "entry", "sources", "plans", "materialise", "results", "checking", "adapters", "serving"} <= set(rows)
    pkg = ROOT / "statebatch"
    for folder, modules in rows.items():
        where = pkg if folder in ("core", "entry") else pkg / folder
        places = [where] + [d.parent for d in where.glob("*/__init__.py")]  # the folder and its subpackages
        missing = sorted(m for m in modules
                         if not any((d / f"{m}.py").exists() or (d / m / "__init__.py").exists() for d in places))
        assert not missing, f"design.md's {folder} row names modules that do not exist: {missing}"
        if folder not in ("core", "entry"):
            present = {p.stem for p in where.glob("*.py") if p.stem != "__init__"} | \
                {p.parent.name for p in where.glob("*/__init__.py")}
            assert present <= modules, f"design.md's {folder} row leaves out {sorted(present - modules)}"
    top = {p.stem for p in pkg.glob("*.py")}
    assert top <= rows["core"] | rows["entry"], f"top-level modules not in the table: {sorted(top - rows['core'] - rows['entry'])}"


def test_readme_links_exist_and_readme_stays_short():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    local = [link for link in links if not link.startswith("http")]
    assert local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
    assert text.splitlines()[2:6] and "make demo" in text.splitlines()[3] and "make test" in text.splitlines()[4]
    assert len(text.splitlines()) <= 120, "the README is the front page (about two screens); the manual is docs/"


def test_make_test_runs_what_the_readme_says():
    # README: `make test` sets up the three environments and runs, side by side, the TensorFlow suite and the
    # backend suites on JAX and torch (CI calls it); a recipe that dropped a suite or ran them one by one fails
    readme = (ROOT / "README.md").read_text()
    assert "runs, side by side, the whole suite on" in readme
    make = (ROOT / "Makefile").read_text()
    rule = re.search(r"^test:(.*)\n((?:\t.*\n)+)", make, re.M)
    assert rule, "the Makefile has no test rule"
    prereqs, recipe = rule.group(1).split(), rule.group(2)
    assert prereqs[:1] == ["lint"] and {"$(JAX_STAMP)", "$(TORCH_STAMP)"} <= set(prereqs)
    assert re.search(r"\$\(MAKE\) -j3 \S* ?test-main test-jax test-torch", recipe), recipe
    for suite, venv in (("test-main", "$(BIN)/python -m pytest"), ("test-jax", "KERAS_BACKEND=jax .venv-jax/"),
                        ("test-torch", "KERAS_BACKEND=torch .venv-torch/")):
        body = re.search(rf"^{suite}:.*\n((?:\t.*\n)+)", make, re.M)
        assert body and venv in body.group(1), suite
    assert "make test" in (ROOT / ".ci" / "run").read_text()
