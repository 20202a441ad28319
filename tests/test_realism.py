"""Song statistics of the realism report (train_util.py --render-report): known signals, known values."""

import json
import math

import numpy as np
import pytest
import soundfile as sf

from mixin.errors import MixinError
from mixin.training.render import realism

SR = 44100


def tone(freq, amp, seconds=20.0, channels=2):
    t = np.arange(int(seconds * SR)) / SR
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def write_song(folder, stems):
    folder.mkdir(parents=True)
    for name, x in stems.items():
        sf.write(folder / f"{name}.flac", x, SR, subtype="PCM_24")
    return folder


def test_band_shares_and_levels_of_tones():
    # drums: 60 Hz at amplitude 0.3 (power 0.045) + 300 Hz at 0.1 (0.005) + 8 kHz at 0.05 (0.00125)
    drums = tone(60, 0.3) + tone(300, 0.1) + tone(8000, 0.05)
    harmonic = tone(80, 0.15)  # power 0.01125 below 110 Hz: drums 6.02 dB above it
    total = 0.045 + 0.005 + 0.00125
    st = realism.song_stats({"percussive": drums, "harmonic": harmonic})
    assert st["drums_below_110"] == pytest.approx(100 * 0.045 / total, abs=0.5)
    assert st["drums_110_500"] == pytest.approx(100 * 0.005 / total, abs=0.5)
    assert st["drums_above_6k"] == pytest.approx(10 * math.log10(0.00125 / total), abs=0.2)
    assert st["drums_minus_harmonic_below_110"] == pytest.approx(10 * math.log10(0.045 / 0.01125),
                                                                 abs=0.2)
    assert math.isnan(st["vocals_minus_rest"])  # no vocals


def test_harmonic_overtones_of_a_sine_sub_and_a_bass_with_overtones():
    drums = tone(60, 0.2)
    sub = realism.song_stats({"percussive": drums, "harmonic": tone(50, 0.3) + tone(300, 0.003)})
    assert sub["harmonic_overtones"] == pytest.approx(-40.0, abs=0.3)  # 300 Hz 40 dB under 50 Hz
    rich = realism.song_stats({"percussive": drums, "harmonic": tone(55, 0.1) + tone(165, 0.2) + tone(440, 0.1)})
    assert rich["harmonic_overtones"] == pytest.approx(10 * math.log10((0.02 + 0.005) / 0.005), abs=0.2)
    assert math.isnan(realism.song_stats({"percussive": drums})["harmonic_overtones"])  # no harmonic part


def test_crest_factor_separates_a_sine_from_sparse_clicks():
    sine = realism.song_stats({"percussive": tone(100, 0.5)})["drum_crest"]
    assert sine == pytest.approx(20 * math.log10(math.sqrt(2)), abs=0.05)  # 3.01 dB
    clicks = np.zeros((int(20 * SR), 2), np.float32)
    clicks[::SR // 2] = 0.9  # two clicks per second: peak 0.9, rms 0.9 * sqrt(2 / SR)
    want = 20 * math.log10(1 / math.sqrt(2 / SR))
    assert realism.song_stats({"percussive": clicks})["drum_crest"] == pytest.approx(want, abs=0.5)


def test_vocal_level_counts_only_where_the_vocals_sing():
    drums = tone(60, 0.2)
    harmonic = tone(200, 0.2)  # the rest: power 0.02 + 0.02
    vocals = tone(1000, 0.1)  # power 0.005: -9.03 dB under the rest
    vocals[: 10 * SR] = 0  # silent half: must not lower the figure
    st = realism.song_stats({"percussive": drums, "harmonic": harmonic, "vocal": vocals})
    assert st["vocals_minus_rest"] == pytest.approx(10 * math.log10(0.005 / 0.04), abs=0.2)


def test_report_per_folder_set_reads_stems_by_name(tmp_path):
    real = tmp_path / "real"
    write_song(real / "a", {"drums": tone(60, 0.3, 10), "bass": tone(80, 0.3, 10),
                            "other": tone(400, 0.1, 10), "vocals": tone(1000, 0.1, 10)})
    write_song(real / "b", {"drums": tone(60, 0.1, 10), "other": tone(80, 0.3, 10)})  # no vocals
    rendered = write_song(tmp_path / "rendered" / "render-train-0000",
                          {"drums": tone(300, 0.3, 10), "other": tone(80, 0.1, 10)})
    rep = realism.report([real, rendered.parent])
    assert [len(s["songs"]) for s in rep["sets"]] == [2, 1]
    a = rep["sets"][0]["songs"]["a"]
    # bass and other are both harmonic: 0.045 against 0.045 + 0 below 110 Hz
    assert a["drums_minus_harmonic_below_110"] == pytest.approx(0.0, abs=0.2)
    summ = rep["sets"][0]["summary"]
    assert summ["vocals_minus_rest"]["n"] == 1  # the song without vocals is left out
    assert summ["drums_below_110"]["min"] <= summ["drums_below_110"]["median"] \
        <= summ["drums_below_110"]["max"]
    assert rep["sets"][1]["summary"]["drums_below_110"]["median"] < 5  # 300 Hz drums
    text = realism.format_report(rep)
    assert "real (2 songs)" in text and "rendered (1 song)" in text
    assert len(text.splitlines()) == 2 + len(realism.STATISTICS)
    # the limit keeps the first songs by name
    assert list(realism.report([real], limit=1)["sets"][0]["songs"]) == ["a"]


def test_bad_folders_are_one_line_errors(tmp_path):
    with pytest.raises(MixinError, match="stems folder not found"):
        realism.report([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MixinError, match="no songs found"):
        realism.report([tmp_path / "empty"])
    write_song(tmp_path / "nodrums" / "s", {"other": tone(80, 0.1, 2)})
    with pytest.raises(MixinError, match="no drums stem"):
        realism.report([tmp_path / "nodrums"])
    with pytest.raises(MixinError, match="positive integer"):
        realism.report([tmp_path / "nodrums"], limit=0)


def test_drum_bus_moves_rendered_drums_towards_recorded_ones():
    """The recorded-profile drum bus: more low end, a lower crest factor, deterministic from its rng."""
    from mixin.training.render import fx

    n = 8 * SR
    t = np.arange(n) / SR
    kick = np.zeros(n)
    for start in range(0, n, SR // 2):  # a decaying 55 Hz kick every 0.5 s
        m = min(SR // 4, n - start)
        kick[start:start + m] = np.sin(2 * np.pi * 55 * t[:m]) * np.exp(-t[:m] / 0.05)
    hats = 0.2 * np.random.default_rng(0).standard_normal(n) * (np.sin(2 * np.pi * 4 * t) > 0)
    x = np.stack([kick + hats] * 2).astype(np.float32)
    before = realism.song_stats({"percussive": x.T})
    rng = np.random.default_rng(5)
    y, info = fx.drum_bus(x, SR, rng, low_db=(12.0, 12.0), high_db=(-6.0, -6.0), comp_probability=1.0)
    after = realism.song_stats({"percussive": y.T})
    assert y.shape == x.shape and y.dtype == np.float32
    assert info["low_shelf"]["gain_db"] == 12.0 and "compressor" in info
    assert after["drums_below_110"] > before["drums_below_110"] + 10
    assert after["drums_above_6k"] < before["drums_above_6k"] - 3
    assert after["drum_crest"] < before["drum_crest"] - 1
    y2, info2 = fx.drum_bus(x, SR, np.random.default_rng(5), low_db=(12.0, 12.0), high_db=(-6.0, -6.0),
                            comp_probability=1.0)
    assert info2 == info and np.array_equal(y2, y)


def test_render_report_command(tmp_path, capsys):
    from mixin.cli import train

    write_song(tmp_path / "real" / "a", {"drums": tone(60, 0.3, 3), "other": tone(400, 0.1, 3)})
    out = tmp_path / "report.json"
    assert train.main(["--render-report", str(tmp_path / "real"), "--report-json", str(out)]) == 0
    assert "drum energy below 110 Hz (%)" in capsys.readouterr().out
    assert json.loads(out.read_text())["sets"][0]["songs"]["a"]["drums_below_110"] > 90
    assert train.main(["--render-report", str(tmp_path / "real"), "--report-json", str(out)]) == 1
    assert "exists; use --overwrite" in capsys.readouterr().err
    for bad, why in ((tmp_path / "no" / "r.json", "does not exist"), (tmp_path / "real", "is a folder")):
        assert train.main(["--render-report", str(tmp_path / "real"), "--report-json", str(bad)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and why in err
    assert not (tmp_path / "no").exists()
    with pytest.raises(SystemExit) as e:
        train.main(["--render-report", str(tmp_path / "real"), "--epochs", "3"])
    assert e.value.code == 2
