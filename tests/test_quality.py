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
