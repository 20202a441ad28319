"""train_util.py: flags, stage order, and one-line errors (no traceback) for bad input."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train_util.py"


def run(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)


def assert_one_line_error(p, *needles):
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "error" in lines[0]
    for n in needles:
        assert n in lines[0], lines[0]


def test_help_and_version(tmp_path):
    p = run("--help", cwd=tmp_path)
    assert p.returncode == 0
    for flag in ("--prepare-stems", "--stem-dirs", "--segment-duration", "--segment-offset",
                 "--track-limit", "--segment-limit", "--augment", "--create-hdf5", "--n-pool",
                 "--mono", "--train", "--plot-training", "--epochs", "--batch-size", "--seed",
                 "--patience", "--steps-per-epoch", "--learning-rate", "--data-dir", "--model-dir",
                 "--logdir", "--overwrite", "--augment-gain-db", "--augment-segments",
                 "--validation-songs", "--test-songs", "--calibrate", "--calibration-chunks"):
        assert flag in p.stdout, flag
    v = run("--version", cwd=tmp_path)
    assert v.returncode == 0 and v.stdout.startswith("MiXiN ")


@pytest.mark.parametrize("args, needles", [
    ((), ("nothing to do",)),
    (("--prepare-stems",), ("--stem-dirs",)),
    (("--stem-dirs", "x"), ("--prepare-stems",)),
    (("--train", "--epochs", "0"), ("--epochs",)),
    (("--train", "--batch-size", "many"), ("--batch-size",)),
    (("--create-hdf5", "--n-pool", "0"), ("--n-pool",)),
    (("--prepare-stems", "--stem-dirs", "x", "--track-limit", "0"), ("--track-limit",)),
    (("--prepare-stems", "--stem-dirs", "x", "--segment-duration", "-3"), ("--segment-duration",)),
    (("--prepare-stems", "--stem-dirs", "x", "--augment-gain-db", "-1"), ("--augment-gain-db",)),
    (("--prepare-stems", "--stem-dirs", "x", "--augment-segments", "0"), ("--augment-segments",)),
])
def test_bad_flags(tmp_path, args, needles):
    assert_one_line_error(run(*args, cwd=tmp_path), *needles)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_missing_or_empty_stem_dir(tmp_path):
    assert_one_line_error(run("--prepare-stems", "--stem-dirs", tmp_path / "nope", cwd=tmp_path),
                          "nope")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("--prepare-stems", "--stem-dirs", tmp_path / "empty", cwd=tmp_path),
                          "empty")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_create_hdf5_with_nothing_prepared(tmp_path):
    assert_one_line_error(run("--create-hdf5", "--n-pool", "1", cwd=tmp_path), "--prepare-stems")
    (tmp_path / "data").mkdir()
    assert_one_line_error(run("--create-hdf5", "--n-pool", "1", cwd=tmp_path), "--prepare-stems")


def test_calibrate_without_models(tmp_path):
    assert_one_line_error(run("--calibrate", cwd=tmp_path), "model_harmonic.h5")
    assert list(tmp_path.iterdir()) == []


def test_train_without_hdf5(tmp_path):
    assert_one_line_error(run("--train", cwd=tmp_path), "data_harmonic.hdf5", "--create-hdf5")
    assert not (tmp_path / "model").exists() and not (tmp_path / "logdir").exists()


def test_song_without_vocals_is_skipped_by_name(tmp_path):
    from mixin.training.render.synth import write_stem_folders

    write_stem_folders(tmp_path / "stems", 2, 3.5, seed=1)
    (tmp_path / "stems" / "song_001" / "vocals.wav").unlink()
    p = run("--prepare-stems", "--stem-dirs", tmp_path / "stems", "--segment-duration", "3",
            cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "song_001" in p.stderr  # the warning names the skipped folder
    assert sorted(d.name for d in (tmp_path / "data").iterdir() if d.is_dir()) == \
        ["0000000nov", "0000000v"]


def test_named_split_and_augmentation_flags(tmp_path):
    import json

    from mixin.training.render.synth import write_stem_folders

    write_stem_folders(tmp_path / "stems", 3, 2.5, seed=3)
    p = run("--prepare-stems", "--stem-dirs", tmp_path / "stems", "--segment-duration", "1",
            "--validation-songs", "song_001", "--augment", "2", "--augment-gain-db", "10",
            "--augment-segments", "1", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "data" / "songs.json").read_text())
    assert doc["split"] == {"train": [0, 2, 3, 4], "validation": [1], "test": []}
    assert [s["n_segments"] for s in doc["songs"]] == [2, 2, 2, 1, 1]
    assert doc["augment_gain_db"] == 10
    bad = run("--prepare-stems", "--stem-dirs", tmp_path / "stems", "--segment-duration", "1",
              "--validation-songs", "Sodium",
              "--data-dir", "d2", cwd=tmp_path)
    assert_one_line_error(bad, "'Sodium'", "song_000")
    assert not (tmp_path / "d2").exists()


@pytest.mark.slow
def test_all_stages_in_one_command(tmp_path):
    """--prepare-stems --create-hdf5 --train in one run, in order, with custom paths."""
    from mixin.training.render.synth import write_stem_folders

    write_stem_folders(tmp_path / "stems", 2, 3.5, seed=2)
    p = run("--prepare-stems", "--stem-dirs", tmp_path / "stems", "--segment-duration", "3",
            "--create-hdf5", "--n-pool", "1", "--train", "--sources", "vocal", "--epochs", "1",
            "--steps-per-epoch", "1", "--batch-size", "2", "--eval-batches", "1", "--plot-training",
            "--data-dir", "d", "--model-dir", "m", "--logdir", "l", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "vocal: MAE train" in p.stdout
    with h5py.File(tmp_path / "d" / "data_vocal.hdf5", "r") as hf:
        assert hf["data-x-train"].shape[1:] == (96, 1948, 1)
    assert (tmp_path / "m" / "model_vocal.h5").is_file()
    assert (tmp_path / "m" / "vocal_train_loss.png").is_file()
    assert (tmp_path / "l" / "model_vocal.state.json").is_file()
    # running the stages again refuses to replace anything
    again = run("--prepare-stems", "--stem-dirs", tmp_path / "stems", "--segment-duration", "3",
                "--data-dir", "d", cwd=tmp_path)
    assert_one_line_error(again, "--overwrite")
    again = run("--create-hdf5", "--n-pool", "1", "--sources", "vocal", "--data-dir", "d", cwd=tmp_path)
    assert_one_line_error(again, "--overwrite")


def test_help_is_grouped_by_stage():
    """Each stage's flags sit under its own heading in --help, and every flag records its stages."""
    from mixin.cli.train import STAGES, get_parser

    parser = get_parser()
    groups = {g.title.split(":")[0]: {a.option_strings[-1] for a in g._group_actions}
              for g in parser._action_groups}
    for stage in STAGES:
        assert f"--{stage}" in groups[f"--{stage}"]
    assert {"--render-dir", "--vocal-dirs"} <= groups["--render-stems"]
    assert {"--segment-duration", "--stem-dirs"} <= groups["--prepare-stems"]
    assert {"--n-pool", "--sources"} <= groups["--create-hdf5"]
    assert {"--epochs", "--batch-size", "--patience"} <= groups["--train"]
    assert {"--rounds", "--mix-dir-weights", "--init-seed"} <= groups["--train-mix"]
    assert "--calibration-chunks" in groups["--calibrate"]
    assert {"--recipe", "--seed", "--overwrite", "--model-dir"} <= groups["common options"]
    assert set(parser.used_by) == {a.dest for a in parser._actions if a.dest != "help"}
    # the flags whose meaning or default differs per stage say so
    text = parser.format_help()
    assert "64 for --train, 16" in text and "epochs (--train; default 2) or N" in text


@pytest.mark.parametrize("args, message", [
    (("--train-mix", "--stem-dirs", "s", "--validation-songs", "a", "--epochs", "3"),
     "--epochs is not used by --train-mix"),
    (("--train", "--rounds", "3"), "--rounds is not used by --train"),
    (("--train-mix", "--stem-dirs", "s", "--validation-songs", "a", "--data-dir", "d"),
     "--data-dir is not used by --train-mix"),
    (("--prepare-stems", "--stem-dirs", "s", "--create-hdf5", "--batch-size", "4"),
     "--batch-size is not used by --prepare-stems or --create-hdf5"),
    (("--render-stems", "--render-dir", "r", "--songs", "1", "--stem-dirs", "s"),
     "--stem-dirs is not used by --render-stems"),
    (("--calibrate", "--vocal-dirs", "v"), "--vocal-dirs is not used by --calibrate"),
])
def test_a_flag_of_another_stage_is_refused(tmp_path, args, message):
    p = run(*args, cwd=tmp_path)
    assert_one_line_error(p, message)
    assert p.returncode == 2 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--ema", "--mask-loss-weight", "--mask-loss", "--low-band-weight",
                                  "--low-bands", "--synth-bass", "--mix-silence"])
def test_trial_only_flags_are_gone(flag):
    from mixin.cli.train import get_parser

    assert flag not in {o for a in get_parser()._actions for o in a.option_strings}


@pytest.mark.parametrize("folder", ["."] + sorted(
    p.parent.name for p in (ROOT / "pretrained-models").glob("*/recipe.json")))
def test_recipe_holds_the_shipped_models_commands(folder):
    """Each shipped set's recipe.json parses into exactly the settings of the train_util.py
    commands that made it (its training.json "commands"), step by step."""
    import json
    import shlex

    from mixin.cli.train import _parse, get_parser, read_recipe

    parser = get_parser()
    d = ROOT / "pretrained-models" / folder
    commands = json.loads((d / "training.json").read_text())["commands"]
    shipped = [_parse(parser, shlex.split(c)[1:]) for c in commands if c.startswith("./train_util.py")]
    assert len(shipped) == 4 and shipped[-1]["train_mix"]
    assert read_recipe(parser, str(d / "recipe.json")) == shipped


def test_recipe_steps_overrides_and_stage_choice(tmp_path):
    """--recipe runs its steps in order; flags given beside it override the recipe's; a stage flag
    runs only that stage's steps; a bad recipe is one line naming the step."""
    import json

    from mixin.training.render.synth import write_stem_folders

    write_stem_folders(tmp_path / "stems", 2, 2.5, seed=4)
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"steps": [
        {"prepare-stems": True, "stem-dirs": ["stems"], "segment-duration": 1, "data-dir": "d1"},
        {"prepare-stems": True, "stem-dirs": "stems", "segment-duration": 1, "data-dir": "d2",
         "validation-songs": "song_001"},
        {"create-hdf5": True, "data-dir": "d1", "n-pool": 1}]}))
    p = run("--recipe", recipe, "--prepare-stems", "--segment-duration", "2", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    d1, d2 = (json.loads((tmp_path / d / "songs.json").read_text()) for d in ("d1", "d2"))
    assert d1["segment_duration"] == d2["segment_duration"] == 2.0
    assert d2["split"]["validation"] == [1] and d1["split"]["validation"] != [1]
    assert not list((tmp_path / "d1").glob("*.hdf5"))  # --prepare-stems: not the create-hdf5 step
    assert_one_line_error(run("--recipe", recipe, "--rounds", "2", cwd=tmp_path),
                          "--rounds is not used by --prepare-stems or --create-hdf5")
    assert_one_line_error(run("--recipe", recipe, "--calibrate", cwd=tmp_path), "no step for --calibrate")
    for step, needle in (({"prepare-stems": True, "rounds": 2}, "step 1: --rounds is not used"),
                         ({"prepare-stems": True, "ema": 0.9}, "step 1: unknown setting 'ema'"),
                         ({"train": True, "epochs": 0}, "step 1: argument --epochs")):
        recipe.write_text(json.dumps({"steps": [step]}))
        assert_one_line_error(run("--recipe", recipe, cwd=tmp_path), needle)
    recipe.write_text("{")
    assert_one_line_error(run("--recipe", recipe, cwd=tmp_path), "cannot read recipe")
