"""Installed model sets (xtract-mixin -n/--model NAME, --list-models)."""

import json

import pytest

from mixin import model as M
from mixin import modelsets
from mixin.errors import MixinError


def fake_set(folder, arch=None, scores=None):
    folder.mkdir(parents=True, exist_ok=True)
    for s in ("harmonic", "percussive", "vocal"):
        (folder / f"model_{s}.h5").write_bytes(b"")
    if arch:
        M.write_model_spec(folder, arch)
    if scores:
        (folder / "training.json").write_text(json.dumps({"validation_scores": {
            song: {"ours": dict(zip(("harmonic", "percussive", "vocal"), v))} for song, v in scores.items()}}))
    return folder


def test_the_shipped_default_set_is_found():
    sets = modelsets.installed_sets()
    assert list(sets)[0] == "mixin"
    assert modelsets.resolve(None) == modelsets.resolve("mixin") == modelsets.default_model_dir()
    d = modelsets.describe(sets["mixin"])
    assert d["architecture"] == "mixin" and "h5" in d["formats"]
    assert set(d["scores"]) >= {"Sodium", "Potassium"}


@pytest.mark.parametrize("name", list(modelsets.installed_sets()))
def test_every_shipped_set_credits_its_material(name):
    # CC BY 4.0 asks for the credit wherever the derived models are used: --list-models and the web
    # app show these lines
    credits = modelsets.describe(modelsets.resolve(name))["credits"]
    assert any("Groove MIDI Dataset" in c and "CC BY 4.0" in c and "Gillick" in c for c in credits)
    assert any("Everything is Free" in c and "CC0" in c for c in credits)


def test_credits_are_listed_and_malformed_ones_ignored(tmp_path, monkeypatch):
    root = fake_set(tmp_path / "pretrained", scores={"Sodium": (1, 2, 3)})
    rec = json.loads((root / "training.json").read_text())
    (root / "training.json").write_text(json.dumps({**rec, "credits": ["song X (CC0)", "grooves Y (CC BY 4.0)"]}))
    fake_set(root / "odd", arch="mixin-hpss", scores={"Sodium": (1, 2, 3)})
    rec = json.loads((root / "odd" / "training.json").read_text())
    (root / "odd" / "training.json").write_text(json.dumps({**rec, "credits": "not a list"}))
    monkeypatch.setattr(modelsets, "default_model_dir", lambda: str(root))
    assert modelsets.describe(root)["credits"] == ["song X (CC0)", "grooves Y (CC BY 4.0)"]
    assert modelsets.describe(root / "odd")["credits"] == []
    text = modelsets.format_sets()
    assert "    trained on: song X (CC0)\n    trained on: grooves Y (CC BY 4.0)\nodd:" in text


def test_subfolders_are_sets_listed_with_their_scores(tmp_path, monkeypatch):
    root = fake_set(tmp_path / "pretrained", scores={"Sodium": (1, 2, 3)})
    fake_set(root / "mixin-plus", arch="mixin-plus", scores={"Potassium": (4.5, 5.25, 6)})
    (root / "not-a-set").mkdir()
    monkeypatch.setattr(modelsets, "default_model_dir", lambda: str(root))
    assert list(modelsets.installed_sets()) == ["mixin", "mixin-plus"]
    assert modelsets.resolve("mixin-plus") == str(root / "mixin-plus")
    text = modelsets.format_sets()
    assert "mixin (default): mixin architecture" in text
    assert "mixin-plus: mixin-plus architecture, inputs mag, hpss_harmonic, hpss_percussive" in text
    assert "Potassium: harmonic 4.50 / percussive 5.25 / vocal 6.00 dB" in text
    with pytest.raises(MixinError, match="unknown model set 'big'.*installed: mixin, mixin-plus"):
        modelsets.resolve("big")


def test_xtract_list_models_and_model_choice(tmp_path, capsys):
    from mixin.cli import xtract

    assert xtract.main(["--list-models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mixin (default): mixin architecture") and "Potassium:" in out
    assert "mixin-hpss: mixin-hpss architecture, inputs mag, hpss_harmonic, hpss_percussive; masks 0.25 anchored to HPSS" in out
    song = tmp_path / "song.wav"
    import numpy as np
    import soundfile as sf

    sf.write(song, np.zeros((44100, 2), np.float32), 44100)
    assert xtract.main([str(song), "--outdir", str(tmp_path / "o"), "-n", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    installed = ", ".join(modelsets.installed_sets())
    assert err == [f"error: unknown model set 'nope' (installed: {installed}; see --list-models, or give a "
                   "folder with --pretrained-model-dir)"]
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as e:
        xtract.main([str(song), "-n", "mixin", "--pretrained-model-dir", str(tmp_path)])
    assert e.value.code == 2
    assert xtract.main([str(song), "--outdir", str(tmp_path / "o"), "-n", "mixin", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "song_harmonic.wav", "song_percussive.wav", "song_vocal.wav"]


def test_eval_takes_installed_set_names():
    from mixin.evaluation.evaluate import parse_model_spec

    shipped = modelsets.default_model_dir()
    assert parse_model_spec("mixin") == ("mixin", shipped)  # even beside the mixin/ package folder
    assert parse_model_spec("ours=mixin") == ("ours", shipped)
    assert parse_model_spec("x=pretrained-models") == ("x", "pretrained-models")


OTHER_SETS = [n for n in modelsets.installed_sets() if n != modelsets.DEFAULT_SET]


@pytest.mark.parametrize("name", OTHER_SETS)
def test_each_other_shipped_set_is_exported_exactly_and_separates(name, tmp_path):
    """A shipped set beside the default: its .onnx files are the exporter's output for its .h5
    files, both backends separate with it alike, and its record gives scores."""
    import shutil

    import numpy as np

    from mixin.onnxexport import export_dir
    from mixin.separation.separate import Separator

    folder = modelsets.resolve(name)
    d = modelsets.describe(folder)
    assert d["architecture"] == M.read_model_spec(folder)["architecture"] and d["formats"] == ["h5", "onnx"]
    assert set(d["scores"]) >= {"Sodium", "Potassium", "rendered test"}
    for s in ("harmonic", "percussive", "vocal"):
        shutil.copy(f"{folder}/model_{s}.h5", tmp_path)
    shutil.copy(f"{folder}/model.json", tmp_path)
    export_dir(tmp_path)
    for s in ("harmonic", "percussive", "vocal"):
        assert (tmp_path / f"model_{s}.onnx").read_bytes() == open(f"{folder}/model_{s}.onnx", "rb").read(), s
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((2 * 44100, 2))).astype(np.float32)
    outs = {b: Separator(folder, backend=b).separate(x, 44100) for b in ("onnx", "tf")}
    for s in ("harmonic", "percussive", "vocal"):
        assert outs["onnx"][s].shape == x.shape and np.isfinite(outs["onnx"][s]).all()
        assert np.abs(outs["onnx"][s] - outs["tf"][s]).max() < 1e-5, s
