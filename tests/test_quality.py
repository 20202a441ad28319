"""The README's quality claim, re-measured: on the two held-out songs of the training album (never
trained on; they chose the checkpoint) the shipped models beat the original MiXiN models by at least
1 dB SDR on every target (the issue's target), and on Sodium they keep percussive >= 8 dB and vocal
>= 4 dB.

Uses ../shared (the CC0 stems and the original models); skipped without it. 30 s mono excerpts (the
automatic offset) keep it to under a minute on 2 cores; the README's table scores 60 s in stereo.
"""

import json

import pytest

from conftest import ROOT, shared_path
from mixin.evaluation import evaluate

MODEL_DIR = ROOT / "pretrained-models"
HELD_OUT = ("Potassium", "Sodium")


@pytest.mark.slow
def test_shipped_models_beat_the_original_on_held_out_songs():
    rec = json.loads((MODEL_DIR / "training.json").read_text())
    for song in HELD_OUT:
        assert song not in rec["training_data"]["split_by_song"]["train"], \
            "the quality check needs songs the shipped models were not trained on"
    stems = shared_path("stems")
    original = shared_path("mixin-original-models")
    songs = evaluate.find_songs([stems], list(HELD_OUT))
    systems = [evaluate.ModelSystem("ours", MODEL_DIR), evaluate.ModelSystem("original", original)]
    res = evaluate.run(songs, systems, duration=30.0, mono=True, progress=False)
    per_song = {r["name"]: {k: v["medians"] for k, v in r["systems"].items()} for r in res["songs"]}
    for song in HELD_OUT:
        for t in ("harmonic", "percussive", "vocal"):
            ours = per_song[song]["ours"][t]["SDR"]
            orig = per_song[song]["original"][t]["SDR"]
            assert ours >= orig + 1.0, (song, t, ours, orig)
    sodium = per_song["Sodium"]["ours"]
    assert sodium["percussive"]["SDR"] >= 8.0 and sodium["vocal"]["SDR"] >= 4.0, sodium


@pytest.mark.slow
def test_the_hpss_anchor_of_mixin_hpss_gains_where_its_networks_fail():
    """docs/models.md series Q1: the anchored masks of the mixin-hpss set raise Potassium's harmonic
    and percussive SDR over the same networks unanchored (60 s stereo: +2.2 / +2.1 dB), and leave
    the vocal as it is."""
    from mixin.separation.separate import Separator

    folder = MODEL_DIR / "mixin-hpss"

    class Unanchored(evaluate.ModelSystem):
        def separator(self):
            return Separator(self.model_dir, hpss_anchor=0.0)

    songs = evaluate.find_songs([shared_path("stems")], ["Potassium"])
    systems = [evaluate.ModelSystem("anchored", folder), Unanchored("plain", folder)]
    res = evaluate.run(songs, systems, duration=30.0, mono=True, progress=False)
    med = {k: {t: v["medians"][t]["SDR"] for t in ("harmonic", "percussive", "vocal")}
           for k, v in res["songs"][0]["systems"].items()}
    assert med["anchored"]["harmonic"] >= med["plain"]["harmonic"] + 1.0, med
    assert med["anchored"]["percussive"] >= med["plain"]["percussive"] + 1.0, med
    assert abs(med["anchored"]["vocal"] - med["plain"]["vocal"]) < 0.05, med


@pytest.mark.slow
def test_mixin_onset_loses_less_of_potassium_than_mixin_hpss():
    """docs/models.md series R1: the mixin-onset set was shipped because it loses less of Potassium
    (a loud sub bass under sparse kicks) than mixin-hpss (60 s stereo: harmonic 6.72 vs 4.71,
    percussive -8.85 vs -11.88 dB) at the same panel score; Sodium's drums and vocal stay."""
    songs = evaluate.find_songs([shared_path("stems")], list(HELD_OUT))
    systems = [evaluate.ModelSystem("onset", MODEL_DIR / "mixin-onset"),
               evaluate.ModelSystem("hpss", MODEL_DIR / "mixin-hpss")]
    res = evaluate.run(songs, systems, duration=30.0, mono=True, progress=False)
    med = {r["name"]: {k: {t: v["medians"][t]["SDR"] for t in ("harmonic", "percussive", "vocal")}
                       for k, v in r["systems"].items()} for r in res["songs"]}
    pot, sod = med["Potassium"], med["Sodium"]
    assert pot["onset"]["harmonic"] >= pot["hpss"]["harmonic"] + 1.0, pot
    assert pot["onset"]["percussive"] >= pot["hpss"]["percussive"] + 1.0, pot
    assert sod["onset"]["percussive"] >= 8.0 and sod["onset"]["vocal"] >= 4.0, sod
