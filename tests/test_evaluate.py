"""Evaluation: BSSv4 scoring and medians, baselines, oracle, outputs and eval_mixin.py errors.

Songs are tiny synthetic stems made here (3 s, 44.1 kHz): chords and a bass line (harmonic),
noise bursts (drums), a vibrato voice with harmonics (vocals).
"""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_path
from eval_mixin import main
from mixin.evaluation import baselines, evaluate
from mixin.errors import MixinError

SR = 44100
DUR = 3.0


def synth_stems(seed=0, dur=DUR, stereo=True):
    """dict stem -> float32 [shape=(n, 2)] (or (n, 1)); every stem active in every second."""
    rng = np.random.default_rng(seed)
    n = int(dur * SR)
    t = np.arange(n) / SR
    pan = lambda x, g: np.stack([x * g, x * (1 - g)], axis=1) if stereo else x[:, None]  # noqa: E731
    bass = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 220 * t)
    other = sum(0.08 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (440, 554.4, 659.3))
    drums = np.zeros(n)
    for k in range(int(dur * 4)):  # a noise burst every 250 ms
        s = int(k * SR / 4)
        m = min(n - s, int(0.1 * SR))
        drums[s:s + m] += 0.6 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.015 * SR))
    f0 = 300 + 15 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    vocals = sum(0.1 / h * np.sin(h * phase) for h in range(1, 6))
    vocals *= 0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t) ** 2
    return {"bass": pan(bass, 0.5).astype(np.float32), "other": pan(other, 0.3).astype(np.float32),
            "drums": pan(drums, 0.6).astype(np.float32),
            "vocals": pan(vocals, 0.5).astype(np.float32)}


def write_song(folder, stems, ext="wav"):
    folder.mkdir(parents=True, exist_ok=True)
    for k, x in stems.items():
        sf.write(str(folder / f"{k}.{ext}"), x, SR, subtype="FLOAT" if ext == "wav" else "PCM_24")
    return folder


@pytest.fixture(scope="module")
def stems_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("stems")
    write_song(root / "SongA", synth_stems(0))
    write_song(root / "SongB", synth_stems(1), ext="flac")
    return root


class Trivial(evaluate.System):
    """Each target = a third of the mixture."""

    name = "mix/3"

    def separate(self, mixture, sr, references):
        return {t: mixture / 3 for t in evaluate.TARGETS}


class Perfect(evaluate.System):
    name = "perfect"

    def separate(self, mixture, sr, references):
        return {t: references[t].copy() for t in evaluate.TARGETS}


# ------------------------------------------------------------------------------------- medians
def test_median_over_windows_ignores_nan_windows():
    frames = {"harmonic": {"SDR": np.array([1.0, np.nan, 3.0, 10.0, np.nan])},
              "vocal": {"SDR": np.array([np.nan, np.nan])}}
    med = evaluate.song_medians(frames)
    assert med["harmonic"]["SDR"] == 3.0  # median of 1, 3, 10 (NaN windows dropped, not as 0)
    assert math.isnan(med["vocal"]["SDR"])  # no valid window: NaN, not an error
    assert evaluate.median_over_windows([2.0, 4.0, np.nan]) == 3.0
    assert evaluate.median_over_windows([np.inf, 1.0, 2.0]) == 2.0


def test_median_over_songs_ignores_songs_without_score():
    assert evaluate.median_over_songs([5.0, np.nan, 1.0, 2.0]) == 2.0
    assert math.isnan(evaluate.median_over_songs([np.nan, np.nan]))


def test_run_medians_are_median_of_song_medians(stems_root, monkeypatch):
    fake = {"SongA": [1.0, np.nan, 2.0, 30.0], "SongB": [np.nan, -4.0, 0.0, 100.0]}

    def fake_eval(references, estimates, win, hop=None):
        song = fake_eval.current
        return {t: {m: np.asarray(fake[song], float) for m in evaluate.METRICS}
                for t in evaluate.TARGETS}

    orig = evaluate.evaluate_song

    def eval_song(song, *a, **k):
        fake_eval.current = song.name
        return orig(song, *a, **k)

    monkeypatch.setattr(evaluate, "bss_eval_v4", fake_eval)
    monkeypatch.setattr(evaluate, "evaluate_song", eval_song)
    songs = evaluate.find_songs([stems_root])
    res = evaluate.run(songs, [Trivial()], mono=True, progress=False)
    per_song = [r["systems"]["mix/3"]["medians"]["vocal"]["SDR"] for r in res["songs"]]
    assert per_song == [2.0, 0.0]
    assert res["medians"]["mix/3"]["vocal"]["SDR"] == 1.0


def _fake_results(sdr):
    """Results as :func:`evaluate.run` returns them, from {system: {song: (H, P, V) SDR}}."""
    kinds = {"HPSS/REPET-SIM": "hpss", "oracle": "oracle"}
    songs = sorted({song for v in sdr.values() for song in v})
    return {"config": {"systems": [{"name": n, "kind": kinds.get(n, "model")} for n in sdr]},
            "songs": [{"name": song, "systems": {n: {"medians": {
                t: {"SDR": sdr[n][song][i]} for i, t in enumerate(evaluate.TARGETS)}} for n in sdr}}
                      for song in songs],
            "medians": {n: {t: {m: float(np.nanmedian([sdr[n][s][i] for s in songs]))
                                for m in evaluate.METRICS} for i, t in enumerate(evaluate.TARGETS)}
                        for n in sdr}}


def test_vs_hpss_is_the_median_of_per_song_differences():
    res = _fake_results({
        "HPSS/REPET-SIM": {"A": (1.0, 2.0, 0.0), "B": (5.0, -1.0, np.nan), "C": (0.0, 0.0, 1.0)},
        "ours": {"A": (2.0, 0.0, 3.0), "B": (4.0, 3.0, 2.0), "C": (7.0, 1.0, 0.5)}})
    d = evaluate.vs_hpss(res)
    assert list(d) == ["ours"]
    # harmonic +1, -1, +7 -> +1; percussive -2, +4, +1 -> +1; vocal +3, (NaN: left out), -0.5 -> +1.25
    assert d["ours"]["harmonic"] == 1.0 and d["ours"]["percussive"] == 1.0
    assert d["ours"]["vocal"] == pytest.approx(1.25)
    # all: the median of the eight differences, not of the three per-target medians
    assert d["ours"]["all"] == pytest.approx(1.0)
    zero = (0.0, 0.0, 0.0)
    res2 = _fake_results({"HPSS/REPET-SIM": {"A": zero, "B": zero, "C": zero},
                          "ours": {"A": (0.0, 0.0, 10.0), "B": (0.0, 0.0, 10.0), "C": (10.0, 10.0, 10.0)}})
    d2 = evaluate.vs_hpss(res2)["ours"]
    assert (d2["harmonic"], d2["percussive"], d2["vocal"], d2["all"]) == (0.0, 0.0, 10.0, 10.0)
    assert evaluate.vs_hpss(_fake_results({"ours": {"A": (1.0, 1.0, 1.0)}})) == {}
    md = evaluate.format_markdown(res)
    assert "| system | harmonic vs HPSS | percussive vs HPSS | vocal vs HPSS | all |" in md
    assert "| ours | 1.00 | 1.00 | 1.25 | 1.00 |" in md
    assert "all = median over every song and target" in evaluate.format_table(res)
    assert "vs HPSS" not in evaluate.format_markdown(_fake_results({"ours": {"A": (1.0, 1.0, 1.0)}}))


# ------------------------------------------------------------------------------------- songs
def test_find_songs_layouts(stems_root, tmp_path):
    songs = evaluate.find_songs([stems_root])
    assert [s.name for s in songs] == ["SongA", "SongB"]
    assert sorted(Path(f).stem for fs in songs[0].files.values() for f in fs) == [
        "bass", "drums", "other", "vocals"]
    assert [s.name for s in evaluate.find_songs([stems_root / "SongB"])] == ["SongB"]
    assert [s.name for s in evaluate.find_songs([stems_root], ["SongB"])] == ["SongB"]
    # MUSDB18-HQ root: test/ and train/ folders of songs; a mixture file is ignored
    musdb = tmp_path / "musdb"
    write_song(musdb / "test" / "T1", synth_stems(2, dur=1.0))
    sf.write(str(musdb / "test" / "T1" / "mixture.wav"), np.zeros((SR, 2), np.float32), SR)
    write_song(musdb / "train" / "T2", synth_stems(3, dur=1.0))
    songs = evaluate.find_songs([musdb])
    assert [s.name for s in songs] == ["T1", "T2"]
    assert all("mixture" not in f for fs in songs[0].files.values() for f in fs)


def test_find_songs_errors(stems_root, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MixinError, match="no songs found"):
        evaluate.find_songs([tmp_path / "empty"])
    with pytest.raises(MixinError, match="not found"):
        evaluate.find_songs([tmp_path / "nope"])
    stems = synth_stems(0, dur=0.5)
    write_song(tmp_path / "nodrums", {k: v for k, v in stems.items() if k != "drums"})
    with pytest.raises(MixinError, match="no drums stem"):
        evaluate.find_songs([tmp_path / "nodrums"])
    write_song(tmp_path / "onlydv", {k: stems[k] for k in ("drums", "vocals")})
    with pytest.raises(MixinError, match="no harmonic \\(bass, other, ...\\) stem"):
        evaluate.find_songs([tmp_path / "onlydv"])
    with pytest.raises(MixinError, match="Nope"):
        evaluate.find_songs([stems_root], ["SongA", "Nope"])


def test_find_songs_checks_only_the_named_songs(tmp_path):
    stems = synth_stems(0, dur=0.5)
    root = tmp_path / "root"
    write_song(root / "Good", stems)
    write_song(root / "NoDrums", {k: v for k, v in stems.items() if k != "drums"})
    write_song(tmp_path / "other" / "Good", stems)
    assert [s.name for s in evaluate.find_songs([root], ["Good"])] == ["Good"]
    with pytest.raises(MixinError, match="NoDrums has no drums stem"):
        evaluate.find_songs([root])
    with pytest.raises(MixinError, match="no drums stem"):
        evaluate.find_songs([root], ["Good", "NoDrums"])
    with pytest.raises(MixinError, match="two songs named 'Good'"):
        evaluate.find_songs([root, tmp_path / "other"], ["Good"])
    assert evaluate.find_songs([root, root], ["Good"])[0].path == str(root / "Good")


def test_load_song_targets_excerpt_mono(stems_root):
    song = evaluate.find_songs([stems_root], ["SongA"])[0]
    stems = synth_stems(0)
    refs, sr, start = evaluate.load_song(song, offset=0.0)
    assert sr == SR and start == 0.0
    np.testing.assert_allclose(refs["harmonic"], stems["bass"] + stems["other"], atol=1e-6)
    np.testing.assert_array_equal(refs["percussive"], stems["drums"])
    np.testing.assert_array_equal(refs["vocal"], stems["vocals"])
    refs, sr, start = evaluate.load_song(song, offset=1.0, duration=1.5, mono=True)
    assert start == 1.0
    assert refs["vocal"].shape == (int(1.5 * SR), 1)
    np.testing.assert_allclose(refs["vocal"][:, 0], stems["vocals"][SR:SR + int(1.5 * SR)].mean(1),
                               atol=1e-7)
    with pytest.raises(MixinError, match="past the end"):
        evaluate.load_song(song, offset=5.0)


def test_auto_offset_picks_the_active_excerpt():
    n = 10 * SR
    refs = {t: np.zeros((n, 1), np.float32) for t in evaluate.TARGETS}
    refs["harmonic"][:] = 0.1
    refs["percussive"][2 * SR:] = 0.1
    refs["vocal"][5 * SR:9 * SR] = 0.1  # all three active in seconds 5..8
    assert evaluate.auto_offset(refs, SR, 3) == 5
    assert evaluate.auto_offset(refs, SR, 6) == 3  # earliest excerpt holding the 4 active seconds
    assert evaluate.auto_offset(refs, SR, 20) == 0


# ------------------------------------------------------------------------------------- scoring
@pytest.fixture(scope="module")
def song_a(stems_root):
    """SongA, first 2 s, mono (scoring stereo costs about 4 times as much)."""
    return evaluate.load_song(evaluate.find_songs([stems_root], ["SongA"])[0], 0.0, 2.0, mono=True)


def test_oracle_far_above_trivial_and_perfect_very_high(song_a):
    refs, sr, _ = song_a
    mix = np.sum(list(refs.values()), axis=0)
    oracle = evaluate.song_medians(evaluate.bss_eval_v4(refs, baselines.oracle(refs), sr))
    trivial = evaluate.song_medians(evaluate.bss_eval_v4(
        refs, {t: mix / 3 for t in evaluate.TARGETS}, sr))
    perfect = evaluate.song_medians(evaluate.bss_eval_v4(refs, refs, sr))
    for t in evaluate.TARGETS:
        assert oracle[t]["SDR"] > trivial[t]["SDR"] + 10, (t, oracle[t], trivial[t])
        assert oracle[t]["SDR"] > 10
        assert trivial[t]["SDR"] < 5
        assert perfect[t]["SDR"] > 80  # +inf or limited only by float rounding
        assert perfect[t]["SIR"] > 80


def test_stereo_scoring(stems_root):
    """museval scores multichannel images natively: perfect stereo estimates score very high,
    and swapping the channels of one estimate is penalised."""
    refs, sr, _ = evaluate.load_song(evaluate.find_songs([stems_root], ["SongA"])[0], 0.0, 2.0)
    assert refs["vocal"].shape == (2 * SR, 2)
    est = {t: r.copy() for t, r in refs.items()}
    est["harmonic"] = est["harmonic"][:, ::-1]
    med = evaluate.song_medians(evaluate.bss_eval_v4(refs, est, sr))
    assert med["vocal"]["SDR"] > 80
    assert med["harmonic"]["SDR"] < med["vocal"]["SDR"] - 40


def test_oracle_masks_sum_to_the_mixture(song_a):
    refs, _, _ = song_a
    est = baselines.oracle(refs)
    mix = np.sum(list(refs.values()), axis=0)
    assert all(est[t].shape == mix.shape and est[t].dtype == np.float32 for t in evaluate.TARGETS)
    total = np.sum(list(est.values()), axis=0)
    err = np.sqrt(np.mean((total - mix) ** 2) / np.mean(mix ** 2))
    assert err < 1e-3  # float32 transform; MASK_EPS leaves the quietest coefficients out


def test_na_target_and_silent_reference(song_a):
    refs, sr, _ = song_a
    est = baselines.oracle(refs)
    full = evaluate.bss_eval_v4(refs, est, sr)
    na = evaluate.bss_eval_v4(refs, {**est, "vocal": None}, sr)
    assert np.all(np.isnan(na["vocal"]["SDR"]))
    # each estimate is scored on its own: leaving one out changes nothing for the others
    np.testing.assert_allclose(na["harmonic"]["SDR"], full["harmonic"]["SDR"])
    silent = {**refs, "vocal": np.zeros_like(refs["vocal"])}
    res = evaluate.bss_eval_v4(silent, est, sr)
    assert np.all(np.isnan(res["vocal"]["SDR"]))
    assert np.all(np.isfinite(res["harmonic"]["SDR"]))


def test_silent_estimate_window_is_scored_not_dropped(song_a):
    """museval drops a window for every target when one estimate is silent in it (and refuses a
    wholly silent estimate); with the dither the window keeps its scores: silence where the
    reference sounds is worth 0 dB SDR (image SDR = |ref|^2 / |est - ref|^2 for such an estimate)."""
    refs, sr, _ = song_a
    est = baselines.oracle(refs)
    est["vocal"] = est["vocal"].copy()
    est["vocal"][:sr] = 0  # a system that outputs silence in the first second
    frames = evaluate.bss_eval_v4(refs, est, sr)
    assert np.isfinite(frames["harmonic"]["SDR"][0])  # museval alone would give NaN everywhere
    assert abs(frames["vocal"]["SDR"][0]) < 1
    assert frames["vocal"]["SDR"][1] > 10
    est["vocal"][:] = 0  # wholly silent: museval would refuse it
    med = evaluate.song_medians(evaluate.bss_eval_v4(refs, est, sr))
    assert abs(med["vocal"]["SDR"]) < 1 and med["harmonic"]["SDR"] > 10


# ------------------------------------------------------------------------------------- baselines
def test_hpss_shapes_and_sum(song_a):
    refs, sr, _ = song_a
    mix = np.sum(list(refs.values()), axis=0)
    h, p = baselines.hpss(mix, sr)
    assert h.shape == p.shape == mix.shape and h.dtype == np.float32
    err = np.sqrt(np.mean((h + p - mix) ** 2) / np.mean(mix ** 2))
    assert err < 1e-3
    h1, p1 = baselines.hpss(mix[:, 0], sr)  # 1-D input: (n, 1)
    assert h1.shape == (len(mix), 1)
    # the percussive part carries the drums more than the harmonic part does
    corr = lambda a, b: abs(np.sum(a * b)) / np.sqrt(np.sum(a * a) * np.sum(b * b))  # noqa: E731
    assert corr(p, refs["percussive"]) > corr(h, refs["percussive"])
    assert corr(h, refs["harmonic"]) > corr(p, refs["harmonic"])


@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large")
def test_repet_sim_shape():
    x = np.random.default_rng(0).standard_normal((SR, 2)).astype(np.float32) * 0.1
    v = baselines.repet_sim(x, SR)
    assert v.shape == x.shape and v.dtype == np.float32 and np.all(np.isfinite(v))
    v = baselines.repet_sim(x[:2000], SR)  # too short to compare frames: no crash, no NaN
    assert v.shape == (2000, 2) and np.all(np.isfinite(v))


# ------------------------------------------------------------------------------------- systems
def test_make_systems_names_and_errors(tmp_path, tiny_models):
    names = [s.name for s in evaluate.make_systems([f"orig={tiny_models}"])]
    assert names == ["orig", "orig no-overlap", "HPSS/REPET-SIM", "oracle"]
    systems = evaluate.make_systems([str(tiny_models)], "no-overlap", hpss=False, oracle=False)
    assert [(s.name, s.overlap) for s in systems] == [(f"{tiny_models.name} no-overlap", 0.0)]
    with pytest.raises(MixinError, match="model directory not found"):
        evaluate.make_systems([str(tmp_path / "none")])
    (tmp_path / "half").mkdir()
    with pytest.raises(MixinError, match="model_harmonic.h5"):
        evaluate.make_systems([str(tmp_path / "half")])
    with pytest.raises(MixinError, match="two systems named"):
        evaluate.make_systems([f"a={tiny_models}", f"a={tiny_models}"])


def test_model_system_with_real_separator(song_a, tiny_models):
    """The plumbing to mixin.separation.separate: both variants, shapes, and the masks' sum is the
    mixture."""
    refs, sr, _ = song_a
    mix = np.sum(list(refs.values()), axis=0)[:SR]
    for system in evaluate.make_systems([f"tiny={tiny_models}"], hpss=False, oracle=False):
        est = system.separate(mix, sr, None)
        assert set(est) == set(evaluate.TARGETS)
        assert all(est[t].shape == mix.shape for t in evaluate.TARGETS)
        np.testing.assert_allclose(np.sum(list(est.values()), axis=0), mix, atol=1e-3)


# ------------------------------------------------------------------------------------- outputs
def test_run_and_write_results(stems_root, tmp_path):
    songs = evaluate.find_songs([stems_root])
    systems = [Trivial(), evaluate.OracleSystem()]
    res = evaluate.run(songs, systems, offset=0.5, duration=2.0, mono=True, progress=False)
    assert [r["offset_s"] for r in res["songs"]] == [0.5, 0.5]
    assert res["songs"][0]["duration_s"] == 2.0
    for t in evaluate.TARGETS:
        assert res["medians"]["oracle"][t]["SDR"] > res["medians"]["mix/3"][t]["SDR"] + 10
    out = tmp_path / "out"
    paths = evaluate.write_results(res, out)
    assert [p.name for p in paths] == list(evaluate.OUTPUT_FILES)
    data = json.loads((out / "scores.json").read_text())
    assert data["medians"]["oracle"]["vocal"]["SDR"] == pytest.approx(
        res["medians"]["oracle"]["vocal"]["SDR"])
    assert len(data["songs"][0]["systems"]["oracle"]["frames"]["vocal"]["SDR"]) == 2
    rows = list(csv.DictReader((out / "songs.csv").open()))
    assert len(rows) == 2 * 2 * 3
    med = list(csv.DictReader((out / "medians.csv").open()))
    assert len(med) == 2 * 3 and {r["n_songs"] for r in med} == {"2"}
    assert float(med[-1]["SDR"]) == pytest.approx(res["medians"]["oracle"]["vocal"]["SDR"],
                                                  abs=1e-3)
    assert (out / "boxplot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| oracle | vocal |" in (out / "medians.md").read_text()
    table = evaluate.format_table(res)
    assert "oracle" in table and "mix/3" in table and "SDR" in table
    with pytest.raises(MixinError, match="--overwrite"):
        evaluate.write_results(res, out)
    evaluate.write_results(res, out, overwrite=True)


def test_parallel_matches_serial(stems_root):
    songs = evaluate.find_songs([stems_root])
    kw = dict(offset=0.0, duration=1.5, mono=True, progress=False)
    serial = evaluate.run(songs, [evaluate.OracleSystem()], jobs=1, **kw)
    parallel = evaluate.run(songs, [evaluate.OracleSystem()], jobs=2, **kw)
    # the same scores up to float rounding: BSS Eval's least squares run on BLAS, whose thread
    # count may differ between this process and the workers (1e-11 dB apart, seen in a full run)
    for t, metrics in serial["medians"]["oracle"].items():
        for m, v in metrics.items():
            assert parallel["medians"]["oracle"][t][m] == pytest.approx(v, rel=1e-9, abs=1e-9), (t, m)
    assert [r["name"] for r in parallel["songs"]] == ["SongA", "SongB"]


# ------------------------------------------------------------------------------------- CLI
def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_error(code, err, match):
    assert code == 1
    assert "Traceback" not in err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err


def test_cli_runs_and_refuses_overwrite(stems_root, tmp_path, capsys):
    out = tmp_path / "res"
    argv = [stems_root, "--songs", "SongA", "--no-hpss", "--duration", "2", "--mono",
            "--outdir", out, "-q"]
    code, stdout, err = run_cli(capsys, *argv, "--model-dir", "x=/nonexistent/models")
    assert_one_line_error(code, err, "model directory not found")
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert "oracle" in stdout and "SDR" in stdout
    assert (out / "medians.csv").exists() and (out / "boxplot.png").exists()
    code, stdout, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "--overwrite")
    code, stdout, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0


def test_cli_songs_ignores_other_folders_and_creates_nothing_on_error(stems_root, tmp_path,
                                                                       capsys):
    root = tmp_path / "root"
    write_song(root / "Good", synth_stems(0, dur=2.0))
    write_song(root / "NoDrums", {k: v for k, v in synth_stems(1, dur=0.5).items()
                                  if k != "drums"})
    out = tmp_path / "res"
    code, _, err = run_cli(capsys, root, "--songs", "Good", "--no-hpss", "--duration", "1",
                           "--mono", "--outdir", out, "-q", "--model-dir", "x=/nonexistent")
    assert_one_line_error(code, err, "model directory not found")  # not the NoDrums folder
    assert not out.exists()
    code, _, err = run_cli(capsys, root, "--outdir", out, "-q")
    assert_one_line_error(code, err, "NoDrums has no drums stem")
    assert not out.exists()


def test_cli_errors(stems_root, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, tmp_path / "empty", "--outdir", tmp_path / "o")
    assert_one_line_error(code, err, "no songs found")
    write_song(tmp_path / "bad" / "S", {k: v for k, v in synth_stems(0, dur=0.5).items()
                                        if k != "vocals"})
    code, _, err = run_cli(capsys, tmp_path / "bad", "--outdir", tmp_path / "o")
    assert_one_line_error(code, err, "no vocals stem")
    code, _, err = run_cli(capsys, stems_root, "--songs", "Nope", "--outdir", tmp_path / "o")
    assert_one_line_error(code, err, "song(s) not found")
    code, _, err = run_cli(capsys, stems_root, "--jobs", "0", "--outdir", tmp_path / "o")
    assert_one_line_error(code, err, "--jobs")
    code, _, err = run_cli(capsys, stems_root, "--offset", "100", "--no-hpss", "--outdir",
                           tmp_path / "o", "-q")
    assert_one_line_error(code, err, "past the end")
    with pytest.raises(SystemExit) as e:
        main([str(stems_root), "--duration", "-3"])
    assert e.value.code == 2


def test_cli_error_with_line_breaks_stays_one_line(stems_root, tmp_path, capsys, monkeypatch):
    def fail(*a, **k):
        raise MixinError("first line\n  second line")

    monkeypatch.setattr(evaluate, "find_songs", fail)
    code, _, err = run_cli(capsys, stems_root, "--outdir", tmp_path / "o")
    assert_one_line_error(code, err, "first line second line")


# ------------------------------------------------------------------------------------- shared
def test_shared_song_5s(tmp_path):
    """One real song, 5 s, mono: the oracle beats HPSS on harmonic and percussive."""
    stems = shared_path("stems")
    songs = evaluate.find_songs([stems], ["Sodium"])
    assert sorted(Path(f).stem for fs in songs[0].files.values() for f in fs) == [
        "bass", "drums", "other", "vocals"]
    res = evaluate.run(songs, [evaluate.HPSSSystem(), evaluate.OracleSystem()], duration=5.0,
                       mono=True, progress=False)
    song = res["songs"][0]
    assert song["duration_s"] == 5.0 and song["channels"] == 1
    med = res["medians"]
    for t in ("harmonic", "percussive"):
        assert np.isfinite(med["HPSS/REPET-SIM"][t]["SDR"])
        assert med["oracle"][t]["SDR"] > med["HPSS/REPET-SIM"][t]["SDR"] + 3
    assert med["oracle"]["vocal"]["SDR"] > 5
    # one song: the oracle's SDR minus HPSS's is the difference of the two medians
    for t in ("harmonic", "percussive", "vocal"):
        assert res["vs_hpss"]["oracle"][t] == pytest.approx(
            med["oracle"][t]["SDR"] - med["HPSS/REPET-SIM"][t]["SDR"])
