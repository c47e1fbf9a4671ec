"""The README's layout figures are measured here, on the whole real-data corpus (bench/corpus.py),
so the README cannot claim more than the detector does: if a change lowers a rate below what the
README says, this fails (the `layout_calibration` benchmark prints the same table)."""

import pathlib
import re
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import corpus  # noqa: E402


@pytest.fixture(scope="module")
def measured():
    cs = corpus.cases(full=True)
    results = [corpus.outcome(c) for c in cs]
    rows = {r["layout"]: r for r in corpus.summarise(results)}
    return cs, results, rows


def _readme_percent(text: str, before: str) -> float:
    """The percentage the README gives right after the words ``before``."""
    m = re.search(re.escape(before) + r"[^0-9]{0,40}?(\d+(?:\.\d+)?)%", text.replace("\n", " "))
    assert m, f"the README no longer says {before!r} with a figure"
    return float(m.group(1)) / 100


def test_readme_layout_figures_hold_on_the_real_data_corpus(measured):
    cs, results, rows = measured
    text = (ROOT / "README.md").read_text()
    assert f"{len(cs)} cases" in text and f"{len({c.dataset for c in cs})} real data sets" in text.replace("\n", " ")
    correct = [r for r in results if r["layout"] in corpus.CORRECT]
    assert sum(r["result"] == "error" for r in correct) == 0  # "no hard error on any correct layout"
    false_alarms = float(np.mean([r["result"] != "pass" for r in correct]))
    assert false_alarms <= _readme_percent(text, "warnings on") + 1e-9 <= 0.02
    assert rows["sliding_windows"]["detection_rate"] == 1.0 == _readme_percent(text, "sliding windows")
    assert rows["natural_order_chunks"]["rate_with_evidence_2plus_features"] >= _readme_percent(text, "natural-order chunks")
    assert rows["permuted_in_batch"]["rate_with_evidence_2plus_features"] >= _readme_percent(text, "permuted inside batches")
    assert rows["batch_shuffle"]["rate_with_evidence_2plus_features"] >= _readme_percent(text, 'shuffle="batch"` order')
    # fit(shuffle=True): found where the successor is identifiable, and the overall rate as stated
    ident = corpus.identifiability(cs, results)
    assert ident["detection_rate_identifiable"] >= _readme_percent(text, "found in")
    assert rows["fit_shuffle"]["rate_with_evidence_2plus_features"] >= _readme_percent(text, "but only")
