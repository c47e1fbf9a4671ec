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


def test_every_module_of_the_layer_table_exists():
    text = (ROOT / "docs" / "design.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| \d+(-\d+)? \|", line)]
    assert len(rows) >= 10
    modules = {m for row in rows for m in re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", row.split("|")[2])}
    missing = sorted(m for m in modules
                     if not (ROOT / "statebatch" / (m.replace(".", "/") + ".py")).exists()
                     and not (ROOT / "statebatch" / m.replace(".", "/") / "__init__.py").exists())
    assert not missing, f"the layer table names modules that do not exist: {missing}"


def test_readme_links_exist_and_readme_stays_short():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    local = [link for link in links if not link.startswith("http")]
    assert local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
    assert text.splitlines()[2:6] and "make demo" in text.splitlines()[3] and "make test" in text.splitlines()[4]
    assert len(text.splitlines()) <= 120, "the README is the front page (about two screens); the manual is docs/"
