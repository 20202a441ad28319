"""The validation panel: every (song, target) scored against HPSS; HPSS computed once and cached."""

import numpy as np
import pytest
import soundfile as sf

from mixin import params
from mixin.errors import MixinError
from mixin.evaluation import panel as P
from mixin.training.render.synth import make_song

SR = params.SAMPLE_RATE


def song_folder(root, name, seed, vocals=True, seconds=6.0):
    stems = make_song(seconds, seed=seed, channels=2)
    folder = root / name
    folder.mkdir(parents=True)
    for stem, x in stems.items():
        if stem == "vocals" and not vocals:
            continue
        sf.write(folder / f"{stem}.wav", x, SR, subtype="FLOAT")
    return folder


class Oracle:
    """A 'separator' that returns the true targets scaled: SDR = -20 log10(|1 - g|)."""

    sources = params.SOURCES

    def __init__(self, panel, gain):
        self.by_mixture = {p.mixture.tobytes(): p.refs for p in panel}
        self.gain = gain

    def separate(self, x, sr):
        refs = self.by_mixture[np.asarray(x, np.float32).tobytes()]
        return {s: r * self.gain for s, r in refs.items()}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("panel")
    song_folder(root / "real", "Alpha", 1)
    song_folder(root / "real", "Beta", 2)
    song_folder(root / "rendered", "render-validation-0000", 3, vocals=False)
    return root


def test_selection_is_the_median_of_model_minus_hpss(folders, monkeypatch):
    calls = []

    def fake_hpss(mixture, refs):  # HPSS at 3 dB everywhere the target exists
        calls.append(1)
        return {s: (3.0 if np.any(refs[s]) else float("nan")) for s in params.SOURCES}

    monkeypatch.setattr(P, "_baseline_scores", fake_hpss)
    cache = folders / "cache.json"
    panel = P.load_panel(real=[folders / "real"], rendered=[folders / "rendered"], duration=4.0, cache=cache)
    assert [(p.name, p.kind) for p in panel] == [("Alpha", "real"), ("Beta", "real"),
                                               ("render-validation-0000", "rendered")]
    assert len(calls) == 3 and cache.is_file()
    assert all(len(p.mixture) == 4 * SR for p in panel)
    np.testing.assert_allclose(panel[0].mixture, sum(panel[0].refs.values()), atol=1e-6)
    res = P.score(Oracle(panel, 0.9), panel)  # every SDR is 20 dB: 17 dB above HPSS
    assert res["selection"] == pytest.approx(17.0, abs=1e-4)
    assert res["rendered"]["harmonic"] == pytest.approx(20.0, abs=1e-4)
    assert np.isnan(res["songs"]["render-validation-0000"]["vocal"])  # no vocals: left out
    assert res["real"]["vs_hpss"] == pytest.approx(17.0, abs=1e-4)
    # the HPSS scores come from the cache the second time
    monkeypatch.setattr(P, "_baseline_scores", lambda m, r: pytest.fail("recomputed"))
    again = P.load_panel(real=[folders / "real"], rendered=[folders / "rendered"], duration=4.0, cache=cache)
    assert repr([p.baseline for p in again]) == repr([p.baseline for p in panel])  # NaN where no vocals


def test_summarise_pairs_only_finite_scores():
    rows = [{"harmonic": 1.0, "hpss_harmonic": 0.0, "percussive": 5.0, "hpss_percussive": 1.0,
             "vocal": float("nan"), "hpss_vocal": float("nan")},
            {"harmonic": -2.0, "hpss_harmonic": 0.0, "percussive": 2.0, "hpss_percussive": float("nan"),
             "vocal": 3.0, "hpss_vocal": 1.0}]
    s = P.summarise(rows)
    assert s["harmonic"] == pytest.approx(-0.5) and s["vocal"] == 3.0
    assert s["vs_hpss"] == pytest.approx(1.5)  # median of 1, 4, -2, 2


def test_real_hpss_baseline_on_a_short_song(folders):
    pytest.importorskip("librosa")
    panel = P.load_panel(real=[folders / "real"], real_names=["Alpha"], duration=3.0)
    assert set(panel[0].baseline) == set(params.SOURCES)
    assert all(np.isfinite(v) for v in panel[0].baseline.values())


def test_bad_panels_are_one_line_errors(folders):
    with pytest.raises(MixinError, match="no songs"):
        P.load_panel()
    with pytest.raises(MixinError, match="duration"):
        P.load_panel(real=[folders / "real"], duration=0.5)
    with pytest.raises(MixinError, match="song\\(s\\) not found: Gamma"):
        P.load_panel(real=[folders / "real"], real_names=["Gamma"])
