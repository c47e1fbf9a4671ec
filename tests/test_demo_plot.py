import numpy as np

import statebatch as sb


def test_demo_runs_and_catches_both_mistakes(tmp_path, capsys):
    from statebatch import demo

    png = tmp_path / "lanes.png"
    result = demo.main(["--epochs", "2", "--plot", str(png)])
    out = capsys.readouterr().out
    assert "DataValueError" in out and "OverlappingWindowsError" in out  # the two mistakes are caught
    assert png.stat().st_size > 1000
    assert np.isfinite(result["rmse_ppm"]) and result["loss"][-1] < result["loss"][0]


def test_plot_lanes_renders_png(tmp_path):
    rng = np.random.default_rng(0)
    a = sb.arrange_stateful([rng.normal(size=(n, 1)) for n in (30, 12, 55, 7, 41)], 5, 3)
    fig = sb.plot_lanes(a)
    path = tmp_path / "lanes.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_xlabel() == "batch (k)" and "5 series in 3 lanes" in ax.get_title()
    # one reset mark per series start
    assert len(ax.collections[0].get_offsets()) == int(a.resets.sum())


def test_load_co2_has_real_missing_values():
    df = sb.load_co2()
    assert df.shape == (2284, 1) and df["co2"].isna().sum() == 59
    assert df.index.is_monotonic_increasing


def test_load_japanese_vowels():
    d = sb.load_japanese_vowels()
    lengths = [len(x) for x in d["X_train"] + d["X_test"]]
    assert len(d["X_train"]) == 270 and len(d["X_test"]) == 370
    assert min(lengths) == 7 and max(lengths) == 29 and d["X_train"][0].shape[1] == 12
    assert sorted(set(d["y_train"].tolist())) == list(range(9))


def test_load_us_macro():
    df = sb.load_us_macro()
    assert df.shape == (203, 12) and str(df.index[0]) == "1959Q1" and df.index.is_monotonic_increasing
