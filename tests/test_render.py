"""The --render-stems stage (render, grooves, drumkits of mixin.training.render): short songs only.

Needs FluidSynth, the Debian drum kits / SoundFonts and ../shared/groove-midi; each test skips with
the reason when what it needs is absent.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixin.training.render import drumkits, grooves, render
from mixin.errors import MixinError

HERE = Path(__file__).resolve().parent
GROOVE_DIR = grooves.DEFAULT_GROOVE_DIR
SR = 44100
DUR = 8.0


def _skip_unless_groove():
    if not (GROOVE_DIR / "info.csv").is_file():
        pytest.skip(f"Groove MIDI Dataset not found ({GROOVE_DIR})")


def _skip_unless_fluidsynth():
    from mixin.training.render import fluid

    try:
        fluid.check_fluidsynth()
    except MixinError as e:
        pytest.skip(str(e))


def _skip_unless_renderable(split="train"):
    _skip_unless_groove()
    _skip_unless_fluidsynth()
    try:
        render.check_resources(split)
    except MixinError as e:
        pytest.skip(str(e))
    except ImportError as e:  # mixin.training.render.backing not there yet
        pytest.skip(f"cannot import the backing renderer: {e}")


@pytest.fixture(scope="module")
def vocal_dir(tmp_path_factory):
    """A song folder with a synthetic 12 s vocals.flac (a vibrato tone with syllable gaps)."""
    d = tmp_path_factory.mktemp("vocalsongs") / "song1"
    d.mkdir()
    t = np.arange(int(12 * SR)) / SR
    f = 220 * 2 ** (np.floor(t * 2) % 5 / 12) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR) * (np.sin(2 * np.pi * 1.5 * t) > -0.3)
    sf.write(d / "vocals.flac", np.stack([x, 0.9 * x], axis=1), SR, subtype="PCM_16")
    sf.write(d / "other.flac", np.stack([0.1 * x, 0.1 * x], axis=1), SR, subtype="PCM_16")
    return d.parent


def _read_stems(folder):
    return {p.stem: sf.read(p, dtype="float32", always_2d=True)[0] for p in sorted(Path(folder).glob("*.flac"))}


# --------------------------------------------------------------------------------------------
# grooves
# --------------------------------------------------------------------------------------------

def test_groove_split_is_kept():
    _skip_unless_groove()
    train = grooves.load_index(split="train")
    test = {g.name for g in grooves.load_index(split="test")}
    assert train and test and not ({g.name for g in train} & test)
    assert all(g.split == "train" for g in train)
    for i in range(3):
        notes, plan = grooves.arrange(train, 30.0, np.random.default_rng([0, i]))
        assert not set(plan["files"]) & test
        assert len(notes) and notes[0, 0] >= 0 and notes[-1, 0] < 30.0
        assert np.all(np.diff(notes[:, 0]) >= 0)
        assert plan["bars"] * plan["bar_seconds"] >= 30.0


def _write_midi(path, bpm=100, bars=4):
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    for beat in range(4 * bars):
        tr.append(mido.Message("note_on", channel=9, note=36 if beat % 2 == 0 else 38, velocity=100, time=0))
        tr.append(mido.Message("note_on", channel=9, note=42, velocity=70, time=0))
        tr.append(mido.Message("note_off", channel=9, note=42, velocity=0, time=240))
        tr.append(mido.Message("note_off", channel=9, note=36 if beat % 2 == 0 else 38, velocity=0, time=240))
    mid.save(path)


def test_corrupt_midi_is_skipped_with_a_warning(tmp_path, caplog):
    d = tmp_path / "gm"
    (d / "d1" / "s1").mkdir(parents=True)
    _write_midi(d / "d1" / "s1" / "1_rock_100_beat_4-4.mid")
    (d / "d1" / "s1" / "2_rock_100_beat_4-4.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage-not-midi")
    head = "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\n"
    rows = [f"d1,d1/s1,d1/s1/{k},rock,100,beat,4-4,d1/s1/{k}_rock_100_beat_4-4.mid,,9.6,train\n" for k in (1, 2)]
    (d / "info.csv").write_text(head + "".join(rows))
    g = grooves.load_index(d, "train")
    assert len(g) == 2
    caplog.set_level(logging.WARNING, logger="mixin")
    grooves._note_cache.clear()
    for seed in range(4):
        notes, plan = grooves.arrange(g, 20.0, np.random.default_rng(seed))
        assert plan["files"] == ["d1/s1/1_rock_100_beat_4-4.mid"]
        assert plan["tempo"] == 100 and abs(plan["bar_seconds"] - 2.4) < 1e-9
        # 4/4 at 100 bpm: kicks on beats 0 and 2 of each bar, every bar looped from the file
        kicks = notes[notes[:, 1] == 36, 0]
        assert np.allclose(np.diff(kicks), 1.2, atol=1e-3)
    assert "2_rock_100_beat_4-4.mid" in caplog.text
    with pytest.raises(MixinError, match="no readable drum groove"):
        grooves.arrange([x for x in g if x.name.startswith("d1/s1/2_")], 10.0, np.random.default_rng(0))


# --------------------------------------------------------------------------------------------
# kits
# --------------------------------------------------------------------------------------------

def test_licences_from_copyright_file(tmp_path):
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: drumkits/Good?Kit.h2drumkit\nCopyright: someone\nLicense: CC-BY-SA-3.0\n\n"
            "Files: drumkits/GplKit.h2drumkit\nCopyright: someone\nLicense: GPL-2\n\n"
            "Files: drumkits/Except.h2drumkit\nLicense: GPL-2+ with composition exception\n text\n")
    cp = tmp_path / "copyright"
    cp.write_text(text)
    files = {"hydrogen-drumkits": str(cp)}
    assert drumkits.kit_licence(tmp_path / "Good Kit", files) == ("CC-BY-SA-3.0", "hydrogen-drumkits")
    assert drumkits.kit_licence(tmp_path / "GplKit", files)[0] == "GPL-2"
    assert drumkits.kit_licence(tmp_path / "Except", files)[0] == "GPL-2+ with composition exception"
    assert drumkits.kit_licence(tmp_path / "Unknown", files) == (None, None)
    ok = drumkits.ALLOWED_LICENCE.match
    assert ok("CC0") and ok("CC-BY-3.0") and ok("CC-BY-SA-3.0-us") and ok("GPL-2+ with composition exception")
    assert not ok("GPL-2") and not ok("GPL-2+") and not ok("CC-BY-NC-3.0")


def _write_kit(folder, pieces):
    folder.mkdir(parents=True)
    inst = []
    for k, (name, layers) in enumerate(pieces):
        lay = ""
        for j, (lo, hi, amp) in enumerate(layers):
            f = f"{k}_{j}.wav"
            t = np.arange(4410) / SR
            sf.write(folder / f, (amp * np.sin(2 * np.pi * (100 + 50 * k) * t) * np.exp(-t * 30)).astype(np.float32),
                     SR, subtype="FLOAT")
            lay += f"<layer><filename>{f}</filename><min>{lo}</min><max>{hi}</max><gain>1</gain></layer>"
        inst.append(f"<instrument><id>{k}</id><name>{name}</name><volume>1</volume><gain>1</gain>{lay}</instrument>")
    (folder / "drumkit.xml").write_text(
        '<?xml version="1.0"?><drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">'
        f"<name>{folder.name}</name><license>CC0</license><instrumentList>{''.join(inst)}</instrumentList>"
        "</drumkit_info>")


def test_bad_kit_xml_is_skipped_with_a_warning(tmp_path, caplog):
    kits = tmp_path / "drumkits"
    _write_kit(kits / "GoodKit", [("Kick", [(0, 1, 0.5)]), ("Snare", [(0, 0.5, 0.2), (0.5, 1, 0.8)]),
                                  ("Closed HH", [(0, 1, 0.3)]), ("Open HH", [(0, 1, 0.3)])])
    (kits / "BrokenKit").mkdir()
    (kits / "BrokenKit" / "drumkit.xml").write_text("<drumkit_info><name>Broken</name><instrumentList>")
    cp = tmp_path / "copyright"
    cp.write_text("Files: drumkits/GoodKit.h2drumkit drumkits/BrokenKit.h2drumkit\nLicense: CC0\n")
    caplog.set_level(logging.WARNING, logger="mixin")
    cat = drumkits.catalogue(hydrogen_dirs=[kits], soundfont_kits=(), copyright_files={"x": str(cp)})
    assert [k.name for k in cat] == ["hydrogen:GoodKit"]
    assert cat[0].licence == "CC0" and not cat[0].heldout
    assert "BrokenKit" in caplog.text
    # the kit plays: snare layers by velocity, a note it cannot play is skipped, open hat choked
    kit = drumkits.hydrogen_kit(kits / "GoodKit")
    notes = np.array([[0.0, 38, 40], [0.5, 38, 110], [1.0, 56, 100], [1.5, 46, 100], [1.52, 42, 100]])
    y, info = drumkits.play_hydrogen(kit, notes, SR * 2, np.random.default_rng(0))
    assert y.shape == (2, SR * 2) and y.dtype == np.float32
    assert info["skipped_notes"] == {"56": 1} and info["hits"] == 4
    soft, loud = np.abs(y[:, :4410]).max(), np.abs(y[:, SR // 2:SR // 2 + 4410]).max()
    assert loud > 3 * soft


def _hit_level(render_one, velocity):
    y = render_one(np.array([[0.05, 38.0, float(velocity)]]))
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def test_velocity_changes_the_level_hydrogen_kit():
    kits = [k for k in drumkits.catalogue() if k.kind == "hydrogen"]
    if not kits:
        pytest.skip("no Hydrogen drum kit installed (apt-get install hydrogen-drumkits)")
    for spec in kits:
        kit = drumkits.hydrogen_kit(spec.path)
        chosen = kit.choose(np.random.default_rng(0))
        levels = [_hit_level(lambda n: drumkits.play_hydrogen(kit, n, SR, np.random.default_rng(0),
                                                              chosen=chosen)[0], v) for v in (40, 110)]
        assert levels[1] > 2 * levels[0] > 0, spec.name


def test_velocity_changes_the_level_soundfont_kit():
    _skip_unless_fluidsynth()
    kits = [k for k in drumkits.catalogue() if k.kind == "sf2" and "MuseScore" not in k.name]
    if not kits:
        pytest.skip("no SoundFont drum kit installed (apt-get install avldrums.lv2-soundfont fluid-soundfont-gm)")
    for spec in [next((k for k in kits if k.bank != 128), kits[0]), next((k for k in kits if k.bank == 128), kits[0])]:
        levels = [_hit_level(lambda n: drumkits.play_soundfont(spec, n, SR), v) for v in (40, 110)]
        assert levels[1] > 1.5 * levels[0] > 0, spec.name


def test_held_out_kits_are_never_training_kits():
    cat = drumkits.catalogue()
    if not cat:
        pytest.skip("no drum kit installed")
    train = {k.name for k in cat if not k.heldout}
    held = {k.name for k in cat if k.heldout}
    assert train and held and not train & held
    assert held <= drumkits.HELDOUT
    hydrogen = [k for k in cat if k.kind == "hydrogen"]
    assert all(drumkits.ALLOWED_LICENCE.match(k.licence) for k in hydrogen)
    # plain GPL material (TimGM6mb) only in the held-out pool
    assert not any(k.licence.startswith("GPL") and "exception" not in k.licence for k in cat if not k.heldout)
    fam = {k.family for k in cat if not k.heldout}
    assert fam == {"acoustic", "electronic"}


def test_no_kit_gives_one_line_error_with_apt_line(tmp_path, monkeypatch):
    monkeypatch.setattr(drumkits, "HYDROGEN_DIRS", (str(tmp_path),))
    monkeypatch.setattr(drumkits, "SOUNDFONT_KITS",
                        ((str(tmp_path / "Missing.sf2"), 128, 0, "Missing", "acoustic", "MIT", "x"),))
    with pytest.raises(MixinError) as e:
        drumkits.kit_pool("train")
    msg = str(e.value)
    assert "\n" not in msg and "apt-get install" in msg and "hydrogen-drumkits" in msg


def test_missing_fluidsynth_gives_one_line_error(tmp_path, monkeypatch):
    _skip_unless_groove()
    from mixin.training.render import fluid

    def missing():
        raise MixinError("FluidSynth is not available (no library): install it with `apt-get install fluidsynth`")

    monkeypatch.setattr(fluid, "_import_fluidsynth", missing)
    out = tmp_path / "out"
    with pytest.raises(MixinError, match="apt-get install fluidsynth"):
        render.render_stems(out, 1, duration=DUR)
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# render_stems
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    ({"songs": 0}, "number of songs.*got 0"),
    ({"duration": 1.5}, "duration.*got 1.5"),
    ({"split": "dev"}, "unknown split 'dev'"),
    ({"jobs": 0}, "jobs.*got 0"),
    ({"vocal_dirs": ["/nonexistent/vocals"]}, "vocal directory not found: /nonexistent/vocals"),
])
def test_arguments_are_checked_before_any_work(tmp_path, kw, match):
    args = {"songs": 1, "duration": DUR, **kw}
    out = tmp_path / "out"
    with pytest.raises(MixinError, match=match):
        render.render_stems(out, **args)
    assert not out.exists()


def test_vocal_dir_without_vocals_is_refused(tmp_path):
    (tmp_path / "v" / "song").mkdir(parents=True)
    sf.write(tmp_path / "v" / "song" / "drums.wav", np.zeros((100, 2)), SR)
    with pytest.raises(MixinError, match="no vocal stem.*" + str(tmp_path / "v")):
        render.render_stems(tmp_path / "out", 1, duration=DUR, vocal_dirs=[tmp_path / "v"])


def test_render_is_deterministic_and_sums_to_the_prepared_mixture(tmp_path, vocal_dir, monkeypatch):
    _skip_unless_renderable()
    monkeypatch.setattr(render, "VOCAL_PROBABILITY", 1.0)
    a = render.render_stems(tmp_path / "a", 2, duration=DUR, seed=3, vocal_dirs=[vocal_dir], progress=False)
    assert a["folders"] == ["render-train-0000", "render-train-0001"]
    assert not list((tmp_path / "a").glob(".tmp*"))
    # same seed: identical files and records whatever the number of songs
    b = render.render_stems(tmp_path / "b", 1, duration=DUR, seed=3, vocal_dirs=[vocal_dir], progress=False)
    assert b["songs"] == 1
    ja, jb = (render.read_songs(tmp_path / d) for d in ("a", "b"))
    assert ja["songs"][0] == jb["songs"][0]
    for f in sorted((tmp_path / "a" / "render-train-0000").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / "render-train-0000" / f.name).read_bytes(), f.name
    # another seed: other gains (and most likely groove, kit, tempo)
    c = render.render_stems(tmp_path / "c", 1, duration=DUR, seed=4, vocal_dirs=[vocal_dir], progress=False)
    jc = render.read_songs(tmp_path / "c")
    assert jc["songs"][0]["gains_db"] != ja["songs"][0]["gains_db"]
    assert c["songs"] == 1

    # records: the split's grooves, a training kit, credits, CSV with one row per song
    test_files = {g.name for g in grooves.load_index(split="test")}
    for r in ja["songs"]:
        assert r["split"] == "train" and not set(r["groove_files"]) & test_files
        assert not r["kit"]["heldout"] and r["kit"]["name"] not in drumkits.HELDOUT
        assert r["kit"]["licence"] and r["tempo"] > 0 and r["metre"]
        assert set(r["stems"]) == {"drums", "bass", "other", "vocals"}
    assert "Groove MIDI Dataset" in ja["credits"]["drums"]
    rows = (tmp_path / "a" / "songs.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("folder,index,split")

    # headroom, and the mixture prepare-stems builds is the sum of the stems read back
    from mixin.training.stems import prepare_stems

    for folder in a["folders"]:
        st = _read_stems(tmp_path / "a" / folder)
        assert all(x.shape == (int(DUR * SR), 2) for x in st.values())
        assert np.abs(sum(st.values())).max() <= 0.9 + 1e-3
    data = tmp_path / "data"
    prepare_stems([tmp_path / "a"], data_dir=data, segment_duration=4.0)
    st = _read_stems(tmp_path / "a" / "render-train-0001")
    seg = slice(4 * SR, 8 * SR)
    mix, _ = sf.read(data / "0010001v" / "mix.wav", dtype="float32", always_2d=True)
    perc, _ = sf.read(data / "0010001v" / "percussive.wav", dtype="float32", always_2d=True)
    total = st["drums"][seg] + st["bass"][seg] + st["other"][seg] + st["vocals"][seg]
    assert np.allclose(mix, total, atol=1e-6) and np.array_equal(perc, st["drums"][seg])


@pytest.mark.slow  # two worker processes each load the SoundFonts (seconds for MuseScore_General.sf3)
def test_parallel_jobs_render_the_same_songs(tmp_path, vocal_dir):
    _skip_unless_renderable()
    kw = dict(duration=6.0, seed=11, vocal_dirs=[vocal_dir], progress=False)
    one = render.render_stems(tmp_path / "one", 2, jobs=1, **kw)
    two = render.render_stems(tmp_path / "two", 2, jobs=2, **kw)
    assert one["folders"] == two["folders"]
    assert render.read_songs(tmp_path / "one")["songs"] == render.read_songs(tmp_path / "two")["songs"]
    for folder in one["folders"]:
        files = sorted(p.name for p in (tmp_path / "one" / folder).iterdir())
        assert files == sorted(p.name for p in (tmp_path / "two" / folder).iterdir())
        for f in files:
            assert (tmp_path / "one" / folder / f).read_bytes() == (tmp_path / "two" / folder / f).read_bytes()
    assert (tmp_path / "one" / "songs.csv").read_text() == (tmp_path / "two" / "songs.csv").read_text()


def test_held_out_split_uses_held_out_kits_and_grooves(tmp_path):
    _skip_unless_renderable("test")
    s = render.render_stems(tmp_path / "t", 1, duration=DUR, seed=0, split="test", progress=False)
    r = render.read_songs(tmp_path / "t")["songs"][0]
    assert s["folders"] == ["render-test-0000"] and r["split"] == "test"
    assert r["kit"]["heldout"] and r["kit"]["name"] in drumkits.HELDOUT
    train_files = {g.name for g in grooves.load_index(split="train")}
    assert not set(r["groove_files"]) & train_files
    assert "vocals" not in r["stems"]


def test_refuses_a_non_empty_dir_and_overwrites_only_its_own(tmp_path):
    _skip_unless_renderable()
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(MixinError, match="not empty.*--overwrite"):
        render.render_stems(out, 1, duration=DUR)
    stale = out / "render-train-0007"
    stale.mkdir()
    (stale / "drums.flac").write_bytes(b"old")
    (out / render.SONGS_JSON).write_text("{}")
    render.render_stems(out, 1, duration=DUR, overwrite=True, progress=False)
    assert (out / "notes.txt").read_text() == "mine"
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "render-train-0000", "songs.csv", "songs.json"]


def test_no_temporary_folder_left_after_a_failure(tmp_path, monkeypatch):
    _skip_unless_renderable()
    from mixin import io as audio

    calls = []
    real = audio.write_audio

    def failing(path, x, sr, subtype="FLOAT"):
        calls.append(path)
        if len(calls) == 2:
            raise MixinError(f"{path}: disk full (simulated)")
        return real(path, x, sr, subtype=subtype)

    monkeypatch.setattr(audio, "write_audio", failing)
    out = tmp_path / "out"
    with pytest.raises(MixinError, match="simulated"):
        render.render_stems(out, 2, duration=DUR, progress=False)
    assert sorted(p.name for p in out.iterdir()) == []


def test_train_util_end_to_end(tmp_path, vocal_dir, monkeypatch, capsys):
    _skip_unless_renderable()
    import train_util

    monkeypatch.setattr(render, "VOCAL_PROBABILITY", 1.0)
    out = tmp_path / "songs"
    assert train_util.main(["--render-stems", "--render-dir", str(out), "--songs", "1", "--duration",
                            str(DUR), "--vocal-dirs", str(vocal_dir), "--seed", "5", "-q"]) == 0
    assert sorted(p.name for p in (out / "render-train-0000").iterdir()) == \
        ["bass.flac", "drums.flac", "other.flac", "vocals.flac"]
    assert train_util.main(["--prepare-stems", "--stem-dirs", str(out), "--data-dir", str(tmp_path / "data"),
                            "--segment-duration", "4", "-q"]) == 0
    doc = json.loads((tmp_path / "data" / "songs.json").read_text())
    assert len(doc["songs"]) == 1 and doc["songs"][0]["n_segments"] == 2
    # refusing to overwrite: one error line, exit status 1
    capsys.readouterr()
    assert train_util.main(["--render-stems", "--render-dir", str(out), "--songs", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--overwrite" in err


def test_recorded_profile_changes_only_the_drum_bus_and_vocal_level(vocal_dir, monkeypatch):
    """--render-profile recorded: the same song as classic (same groove, kit, parts, vocal
    excerpts), its drums through the drum bus and its vocals at the recorded level."""
    _skip_unless_renderable()
    monkeypatch.setattr(render, "VOCAL_PROBABILITY", 1.0)
    files = render.find_vocal_files([vocal_dir])
    classic, rec_c = render.render_song(0, 4, "validation", DUR, files)
    recorded, rec_r = render.render_song(0, 4, "validation", DUR, files, profile="recorded")
    for stem in ("bass", "other"):  # the same parts, up to the song's final headroom scaling
        a, b = classic[stem].astype(np.float64), recorded[stem].astype(np.float64)
        np.testing.assert_allclose(b / np.linalg.norm(b), a / np.linalg.norm(a), atol=1e-6)
    assert not np.allclose(classic["drums"], recorded["drums"])
    assert rec_r["groove_files"] == rec_c["groove_files"] and rec_r["kit"] == rec_c["kit"]
    assert rec_r["profile"] == "recorded" and set(rec_r["drum_bus"]) >= {"low_shelf", "high_shelf"}
    assert "profile" not in rec_c  # classic records are as before
    lo, hi = render.PROFILES["recorded"]["vocals_db"]
    assert lo <= rec_r["balance_db"]["vocals_vs_rest"] <= hi
    with pytest.raises(MixinError, match="unknown render profile 'loud'"):
        render.render_stems("unused", 1, profile="loud")


def _below_hz(x, hz=110.0):
    """Energy of ``x`` [shape=(2, n)] below ``hz``."""
    spec = np.abs(np.fft.rfft(x.astype(np.float64), axis=-1)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / 44100)
    return float(spec[:, f < hz].sum())


def test_wide_profile_is_recorded_plus_sub_bass_songs():
    """--render-profile wide: a song without sub bass is the recorded profile's, bit for bit; a
    sub-bass song has fewer kicks and a louder low end of the bass relative to the drums."""
    _skip_unless_renderable()
    prof = render.PROFILES["wide"]
    flags = [render._sub_bass(3, i, prof) is not None for i in range(40)]
    assert 0.1 < np.mean(flags) < 0.6  # the profile's share (0.3) of 40 songs
    plain, sub = flags.index(False), flags.index(True)
    for i in (plain, sub):
        wide, rec_w = render.render_song(i, 3, "train", DUR, profile="wide")
        recd, rec_r = render.render_song(i, 3, "train", DUR, profile="recorded")
        if i == plain:
            assert rec_w["sub_bass"] is None and "sub_bass" not in rec_r
            for stem in recd:
                np.testing.assert_array_equal(wide[stem], recd[stem])
            continue
        s = rec_w["sub_bass"]
        lo, hi = render.SUB_BASS["kick_keep"]
        assert lo <= s["kick_keep"] <= hi and s["kicks"][1] < s["kicks"][0]
        bal_w, bal_r = rec_w["balance_db"], rec_r["balance_db"]
        assert bal_w["drums_vs_bass_other"] == pytest.approx(min(s["drums_db"], bal_r["drums_vs_bass_other"]), abs=1e-3)
        assert bal_w["bass_vs_other"] == pytest.approx(max(s["bass_vs_other"], bal_r["bass_vs_other"]), abs=1e-3)
        ratio_w = _below_hz(wide["drums"]) / _below_hz(wide["bass"] + wide["other"])
        ratio_r = _below_hz(recd["drums"]) / _below_hz(recd["bass"] + recd["other"])
        assert 10 * np.log10(ratio_w / ratio_r) < -3  # drums minus harmonic below 110 Hz fell > 3 dB


def test_synth_bass_is_a_pure_low_sine_by_default_settings():
    """backing.synth_bass: notes on a sine at their pitch (an octave down when asked), nothing
    above the second harmonic without drive, silent outside the notes and their release."""
    from mixin.training.render import backing

    base = {"drive_db": 0.0, "second_db": -40.0, "attack_ms": 5.0, "decay_s": 4.0, "release_ms": 50.0,
            "octave_down": 0.0, "glide_st": 0.0, "glide_ms": 30.0, "seed": 1}
    notes = np.array([[0.5, 1.5, 33, 100], [2.0, 3.0, 45, 80]])  # A1 55 Hz, A2 110 Hz
    y = backing.synth_bass(notes, 4 * 44100, 44100, base)
    assert y.shape == (2, 4 * 44100) and y.dtype == np.float32
    np.testing.assert_array_equal(y[0], y[1])
    assert np.max(np.abs(y)) == pytest.approx(0.5, abs=1e-6)
    assert not np.any(y[:, : int(0.5 * 44100)]) and np.max(np.abs(y[:, int(1.6 * 44100):int(2.0 * 44100)])) < 1e-3
    n = 35280  # 0.8 s from 0.6 s (+ t) into the note, Hann-windowed
    seg = lambda x, t: x[0, 26460 + int(t * 44100):26460 + int(t * 44100) + n].astype(np.float64) * np.hanning(n)
    spec = np.abs(np.fft.rfft(seg(y, 0))) ** 2
    f = np.fft.rfftfreq(n, 1 / 44100)
    assert abs(f[np.argmax(spec)] - 55.0) < 2.0
    assert spec[f > 150].sum() / spec.sum() < 1e-3  # the second harmonic at -40 dB, no more
    down = backing.synth_bass(notes, 4 * 44100, 44100, dict(base, octave_down=1.0))
    spec2 = np.abs(np.fft.rfft(seg(down, 1.5)))
    assert abs(f[np.argmax(spec2)] - 55.0) < 2.0  # A2 played as A1
    driven = backing.synth_bass(notes, 4 * 44100, 44100, dict(base, drive_db=24.0))
    spec3 = np.abs(np.fft.rfft(seg(driven, 0))) ** 2
    assert spec3[f > 150].sum() / spec3.sum() > 1e-2  # saturation adds overtones


def test_synth_profile_is_wide_plus_sine_bass_songs():
    """--render-profile synth: a song without the synthesizer is the wide profile's, bit for bit;
    with it only the bass differs, and its low end has far fewer overtones."""
    _skip_unless_renderable()
    from mixin.training.render import realism

    prof = render.PROFILES["synth"]
    flags = [render._synth_bass(3, i, prof) is not None for i in range(40)]
    assert 0.2 < np.mean(flags) < 0.6  # the profile's share (0.4) of 40 songs
    plain = flags.index(False)
    synth_songs = [i for i, v in enumerate(flags) if v]
    song, rec = render.render_song(plain, 3, "train", DUR, profile="synth")
    wide, _ = render.render_song(plain, 3, "train", DUR, profile="wide")
    assert rec["synth_bass"] is None
    for stem in wide:
        np.testing.assert_array_equal(song[stem], wide[stem])
    for i in synth_songs:  # the first with a bass line
        song, rec = render.render_song(i, 3, "train", DUR, profile="synth")
        if rec["backing"]["has_bass"]:
            break
    wide, rec_w = render.render_song(i, 3, "train", DUR, profile="wide")
    assert rec["synth_bass"]["drive_db"] >= 0 and rec["backing"]["parts"][0]["synth"] == rec["synth_bass"]
    assert rec["groove_files"] == rec_w["groove_files"] and rec["kit"] == rec_w["kit"]
    for stem in ("drums", "other"):  # the same, up to the song's final headroom scaling
        a, b = wide[stem].astype(np.float64), song[stem].astype(np.float64)
        np.testing.assert_allclose(b / np.linalg.norm(b), a / np.linalg.norm(a), atol=1e-5)
    over = lambda x: realism.song_stats({"percussive": x["drums"].T, "harmonic": x["bass"].T})["harmonic_overtones"]
    assert over(song) < over(wide) - 6
