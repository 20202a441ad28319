"""Generated backing music (bass and "other" stems) in a groove's tempo and metre, rendered with FluidSynth.

:func:`render_backing`: a random key and chord loop, a bass line and 2-5 other parts (comping,
arpeggios, pads, lead, power chords), each humanised, rendered on its own (:func:`.fluid.render_notes`)
through its own effects (:func:`.fx.random_chain`) onto a shared room (docs/training.md). Held-out
songs use :data:`HELDOUT_SOUNDFONTS` and the ``"heldout"`` programs of :data:`INSTRUMENTS` only.
With ``bass_synth`` the bass line is played by :func:`synth_bass` instead: the sine sub bass of
electronic records, whose low end has almost nothing above 150 Hz.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from . import fx
from ...errors import MixinError
from .fluid import check_fluidsynth, check_soundfont, render_notes
from .harmony import MODE_WEIGHTS, MODES, NOTE_NAMES, PROGRESSIONS, degree_notes

log = logging.getLogger("mixin")

#: SoundFonts for training material (both MIT-licensed).
TRAIN_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/MuseScore_General.sf3")

#: SoundFont for held-out (validation / test) material only (GPL-2; never used for training).
HELDOUT_SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2",)

#: General MIDI programs (0-based) by instrument family: about one in four of each family (at least one)
#: is held out for validation/test renders. Voice-like programs (choirs, voice leads) are left out: they
#: would be "vocals" to a listener. GM has one overdriven (29) and one distortion (30) guitar program, so
#: they form one family, in which clean guitars played through the distortion effect also count.
INSTRUMENTS: dict[str, dict[str, list[int]]] = {
    "piano": {"train": [0, 2, 3], "heldout": [1]},
    "electric_piano": {"train": [4, 7, 6], "heldout": [5]},
    "organ": {"train": [16, 18, 19], "heldout": [17]},
    "clean_guitar": {"train": [27, 28], "heldout": [26]},
    "acoustic_guitar": {"train": [25], "heldout": [24]},
    "driven_guitar": {"train": [30, 27, 28], "heldout": [29]},
    "bass": {"train": [33, 32, 36, 35, 38, 37], "heldout": [34, 39]},
    "strings": {"train": [48, 50, 44, 42, 45], "heldout": [49, 51]},
    "brass": {"train": [61, 56, 62, 57, 65], "heldout": [63, 66]},
    "synth_pad": {"train": [89, 88, 90, 95, 93], "heldout": [92]},
    "synth_lead": {"train": [81, 80, 84, 87, 86], "heldout": [82, 83]},
    "mallets": {"train": [11, 12, 9, 13], "heldout": [8, 10]},
    "accordion": {"train": [21, 22], "heldout": [23]},
    "flute": {"train": [73, 75], "heldout": [74]},
}

#: Musical roles of "other" parts: the families that can play them and the effects role of each family.
ROLE_FAMILIES: dict[str, list[str]] = {
    "comping": ["piano", "electric_piano", "organ", "clean_guitar", "acoustic_guitar", "brass", "driven_guitar"],
    "arpeggio": ["piano", "electric_piano", "clean_guitar", "acoustic_guitar", "mallets", "synth_lead", "strings"],
    "pad": ["strings", "synth_pad", "organ", "accordion", "electric_piano"],
    "lead": ["synth_lead", "driven_guitar", "brass", "flute", "mallets", "piano", "strings", "accordion",
             "clean_guitar"],
    "power": ["driven_guitar"],
}

#: Effects role (:data:`mixin.training.render.fx.ROLES`) of each family.
FAMILY_FX = {
    "piano": "keys", "electric_piano": "keys", "organ": "keys", "clean_guitar": "guitar_clean",
    "acoustic_guitar": "guitar_clean", "driven_guitar": "guitar_drive", "bass": "bass", "strings": "pad",
    "brass": "lead", "synth_pad": "pad", "synth_lead": "lead", "mallets": "keys", "accordion": "keys",
    "flute": "lead",
}

#: Level (active RMS, dBFS) of a part before its random gain: a full "other" stem peaks below 0 dBFS.
PART_LEVEL_DB = -24.0

#: Humanisation: timing jitter (s, standard deviation and bound).
TIMING_SD = 0.004
TIMING_MAX = 0.010


#: The sub-bass synthesizer's settings (:func:`synth_bass`) and the ranges they are drawn from
#: (:func:`draw_synth_bass`): saturation (dB of drive into a tanh; 0 = clean, its odd overtones
#: 60 dB down; 24 = strongly saturated), the second harmonic (dB), attack (ms), the exponential
#: decay's time constant (s, log-uniform: short = a plucked 808, long = an organ-like sustain),
#: release (ms), the share of notes an octave down (notes at or above E2 only), and a pitch drop at
#: the note's start (808 style) in some songs.
SYNTH_BASS = {"drive_db": (0.0, 24.0), "second_db": (-40.0, -12.0), "attack_ms": (2.0, 20.0),
              "decay_s": (0.3, 8.0), "release_ms": (20.0, 150.0), "octave_down": (0.0, 1.0),
              "glide_probability": 0.3, "glide_st": (2.0, 7.0), "glide_ms": (15.0, 60.0)}


def draw_synth_bass(rng: np.random.Generator) -> dict[str, float]:
    """One song's :func:`synth_bass` settings, drawn from ``rng`` within :data:`SYNTH_BASS`."""
    r = SYNTH_BASS
    out = {k: float(rng.uniform(*r[k])) for k in ("drive_db", "second_db", "attack_ms", "release_ms",
                                                   "octave_down")}
    out["decay_s"] = fx.log_uniform(rng, *r["decay_s"])
    glide = rng.random() < r["glide_probability"]
    out["glide_st"] = float(rng.uniform(*r["glide_st"])) if glide else 0.0
    out["glide_ms"] = float(rng.uniform(*r["glide_ms"]))
    out["seed"] = int(rng.integers(2**31))
    return out


def synth_bass(notes: np.ndarray, n_samples: int, sr: int, settings: dict[str, float]) -> np.ndarray:
    """Play ``notes`` (rows ``(start_s, end_s, midi_pitch, velocity)`` [shape=(n, 4)]) on a sine sub
    bass: per note a sine at the pitch (a share ``octave_down`` of the notes from E2 up an octave
    lower, never below B0), an optional pitch drop of ``glide_st`` semitones over ``glide_ms``, a
    linear attack, an exponential decay of time constant ``decay_s`` while held, a release, the
    second harmonic at ``second_db`` and a tanh saturation of ``drive_db``. Returns float32
    [shape=(2, n_samples)] (the two channels equal; peak 0.5 before the song's level is set)."""
    n_samples = int(n_samples)
    y = np.zeros(n_samples, np.float64)
    pick = np.random.default_rng(int(settings["seed"]))
    rel = settings["release_ms"] / 1000.0
    for t0, t1, pitch, vel in np.asarray(notes, dtype=np.float64).reshape(-1, 4):
        a = int(round(max(0.0, t0) * sr))
        if a >= n_samples or vel <= 0:
            continue
        if pitch >= 40 and pick.random() < settings["octave_down"]:
            pitch -= 12
        pitch = max(pitch, 23.0)
        hold = max(t1 - t0, 0.01)
        b = min(n_samples, a + int(round((hold + rel) * sr)))
        t = np.arange(b - a) / sr
        semis = pitch + settings["glide_st"] * np.exp(-t / (settings["glide_ms"] / 1000.0))
        phase = 2.0 * np.pi * np.cumsum(440.0 * 2.0 ** ((semis - 69.0) / 12.0)) / sr
        env = np.minimum(1.0, t / (settings["attack_ms"] / 1000.0)) * np.exp(-t / settings["decay_s"])
        after = t > hold
        env[after] *= np.exp(-(t[after] - hold) / (rel / 5.0))  # -43 dB at the release's end
        y[a:b] += (vel / 127.0) * env * (np.sin(phase) + 10 ** (settings["second_db"] / 20) * np.sin(2 * phase))
    peak = float(np.max(np.abs(y))) if n_samples else 0.0
    if peak > 0:
        g = 0.1 * 10 ** (settings["drive_db"] / 20)
        y = np.tanh(g * y / peak) / np.tanh(g) * 0.5
    return np.stack([y, y]).astype(np.float32)


# --- Harmony ---

def _chord(mode: str, tonic: int, degree: int, kind: str) -> dict:
    """A diatonic chord: pitch classes (root first) and a symbol such as ``"F#m7"``."""
    def pc(i: int) -> int:
        return (tonic + int(degree_notes(mode, i))) % 12

    root = pc(degree)
    third, fifth, seventh = pc(degree + 2), pc(degree + 4), pc(degree + 6)
    if kind == "sus2":
        tones = [root, pc(degree + 1), fifth]
    elif kind == "sus4":
        tones = [root, pc(degree + 3), fifth]
    else:
        tones = [root, third, fifth] + ([seventh] if kind == "7" else [])
    iv = [(t - root) % 12 for t in tones]
    if kind in ("sus2", "sus4"):
        q = kind
    else:
        tri = {(4, 7): "", (3, 7): "m", (3, 6): "dim", (4, 8): "aug"}.get((iv[1], iv[2]), "")
        q = tri
        if kind == "7":
            sev = iv[3]
            q = {("", 11): "maj7", ("", 10): "7", ("m", 10): "m7", ("m", 11): "mmaj7",
                 ("dim", 10): "m7b5", ("dim", 9): "dim7"}.get((tri, sev), tri + "7")
    return {"root": root, "tones": tones, "symbol": NOTE_NAMES[root] + q, "degree": degree}


def _progression(rng: np.random.Generator, mode: str, tonic: int) -> list[dict]:
    """4-8 chords: a common progression (or a random diatonic one), with occasional 7ths and sus chords."""
    if rng.random() < 0.7:
        pool = PROGRESSIONS[mode]
        degrees = list(pool[int(rng.integers(len(pool)))])
        if len(degrees) == 4 and rng.random() < 0.3:  # 8 bars: repeat with a different ending
            alt = list(degrees)
            alt[-1] = int(rng.choice([d for d in (0, 3, 4, 5) if d != alt[-1]]))
            degrees = degrees + alt
    else:
        n = int(rng.choice([4, 4, 4, 6, 8]))
        degrees = [0]
        for _ in range(n - 1):
            weights = np.array([1.5, 0.6, 0.7, 1.5, 1.5, 1.2, 0.8])
            if mode in ("major",):
                weights[6] = 0.15  # the diminished vii
            if mode in ("minor", "dorian"):
                weights[1] = 0.3
            weights[degrees[-1]] *= 0.2
            degrees.append(int(rng.choice(7, p=weights / weights.sum())))
    p7 = float(rng.choice([0.0, 0.15, 0.5]))
    psus = float(rng.choice([0.0, 0.1]))
    out = []
    for d in degrees:
        r = rng.random()
        kind = "7" if r < p7 else ("sus2" if rng.random() < 0.5 else "sus4") if r < p7 + psus else "triad"
        c = _chord(mode, tonic, d, kind)
        if mode == "minor" and d == 4 and kind != "sus2" and kind != "sus4" and rng.random() < 0.5:
            # harmonic-minor dominant: major third
            c["tones"][1] = (c["root"] + 4) % 12
            c["symbol"] = NOTE_NAMES[c["root"]] + ("7" if kind == "7" else "")
        out.append(c)
    return out


def _song_chords(rng: np.random.Generator, prog: list[dict], n_bars: int, mode: str,
                 tonic: int) -> list[list[dict]]:
    """Chords for every bar (a list of 1 or 2 chords per bar): the progression looped, with variations."""
    bars: list[list[dict]] = []
    p_vary = float(rng.uniform(0.0, 0.25))
    p_split = float(rng.choice([0.0, 0.0, 0.15]))
    while len(bars) < n_bars:
        for c in prog:
            bar = [c]
            if len(bars) >= len(prog) and rng.random() < p_vary:
                d = int(rng.choice([0, 1, 3, 4, 5]))
                bar = [_chord(mode, tonic, d, "7" if rng.random() < 0.2 else "triad")]
            if rng.random() < p_split:
                d = int(rng.choice([0, 3, 4, 5]))
                bar.append(_chord(mode, tonic, d, "triad"))
            bars.append(bar)
    return bars[:n_bars]


def _pitches(pcs: list[int], lo: int, hi: int) -> np.ndarray:
    """All MIDI pitches in ``lo..hi`` with a pitch class in ``pcs`` (sorted)."""
    p = np.arange(lo, hi + 1)
    return p[np.isin(p % 12, pcs)]


def _voicing(tones: list[int], center: float, n: int, prev: np.ndarray | None) -> np.ndarray:
    """A close voicing of ``n`` notes (all chord tones, root doubled if needed) near ``center``, chosen
    among the inversions to move least from ``prev``."""
    tones = list(tones) + [tones[0], tones[2 % len(tones)]] * 2
    tones = tones[:max(n, 3)]
    best, best_cost = None, np.inf
    for inv in range(len(tones)):
        order = tones[inv:] + tones[:inv]
        notes = []
        cur = int(center) - 8
        for pc in order:
            p = cur + ((pc - cur) % 12)
            notes.append(p)
            cur = p + 1
        notes = np.array(notes)
        notes += 12 * int(round((center - notes.mean()) / 12))
        cost = abs(notes.mean() - center) * 0.5
        if prev is not None and len(prev):
            cost += np.abs(np.sort(notes)[:, None] - np.sort(prev)[None, :]).min(axis=1).sum()
        if cost < best_cost:
            best, best_cost = notes, cost
    return np.sort(best)


def _guitar_voicing(chord: dict, low: float, n: int) -> np.ndarray:
    """A barre-chord-like guitar voicing (root, fifth, octave or seventh, third, fifth, double octave from
    a root near ``low``), the top ``n`` of its six strings."""
    root = int(round(low)) + (chord["root"] - int(round(low))) % 12
    rel = [(t - chord["root"]) % 12 for t in chord["tones"]]
    third, fifth = rel[1], rel[2]
    fourth_string = rel[3] if len(rel) > 3 else 12
    shape = [0, fifth, fourth_string, third + 12, fifth + 12, 24]
    return root + np.array(sorted(shape)[6 - n:])


# --- Parts: note lists (start_s, end_s, pitch, velocity) ---

class _Grid:
    """Song timing: bars of ``beats_per_bar`` beats at ``tempo`` bpm from time 0."""

    def __init__(self, tempo: float, beats_per_bar: int, n_bars: int, rng: np.random.Generator):
        self.beat = 60.0 / tempo
        self.bpb = beats_per_bar
        self.bar = self.beat * beats_per_bar
        self.n_bars = n_bars
        self.rng = rng
        self.swing = float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0.08, 0.2)]))
        # section dynamics: a velocity offset per 4- or 8-bar section (verses softer, choruses louder)
        sec = int(rng.choice([4, 8]))
        offsets = rng.uniform(-14.0, 8.0, -(-n_bars // sec)) * float(rng.choice([0.0, 0.5, 1.0]))
        self.intensity = np.repeat(offsets, sec)[:n_bars]

    def t(self, bar: int, beat: float) -> float:
        """Time (s) of ``beat`` (0-based, fractional) in ``bar``, with the song's swing on off-eighths."""
        frac = beat % 1.0
        if self.swing and abs(frac - 0.5) < 1e-6:
            beat = beat + self.swing * 0.5
        return bar * self.bar + beat * self.beat


def _chord_at(bars: list[list[dict]], bar: int, beat: float, bpb: int) -> dict:
    """The chord at ``beat`` of ``bar`` (a bar holds one chord or two, one per half)."""
    return bars[bar][0] if len(bars[bar]) == 1 or beat < bpb / 2 else bars[bar][1]


def _played(grid: _Grid, active: np.ndarray) -> list[int]:
    """The bars in which a part plays."""
    return [b for b in range(grid.n_bars) if active[b]]


def _rows(rows: list[tuple[float, float, int, float]]) -> np.ndarray:
    """Note rows ``(start_s, end_s, pitch, velocity)`` as an array [shape=(n, 4)]."""
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _humanise(notes: np.ndarray, grid: _Grid, vel_sd: float = 6.0) -> np.ndarray:
    """One performance of ``notes`` [shape=(n, 4)]: onsets moved by up to +-10 ms, velocities varied and
    shifted by the section dynamics; a new array."""
    a = notes.copy()
    if not len(a):
        return a
    a[:, 0] = np.maximum(0.0, a[:, 0] + np.clip(grid.rng.normal(0.0, TIMING_SD, len(a)), -TIMING_MAX, TIMING_MAX))
    a[:, 1] = np.maximum(a[:, 0] + 0.03, a[:, 1])
    bar = np.clip((notes[:, 0] / grid.bar).astype(int), 0, grid.n_bars - 1)
    vel = a[:, 3] + grid.intensity[bar] + grid.rng.normal(0.0, vel_sd, len(a))
    a[:, 3] = np.clip(np.rint(vel), 15, 127)
    return a


def _rhythm(rng: np.random.Generator, bpb: int, style: str) -> list[tuple[float, float, float]]:
    """One bar of onsets ``(beat, length_beats, accent)`` for a comping/bass rhythm style."""
    eighths = [i * 0.5 for i in range(2 * bpb)]
    if style == "whole":
        return [(0.0, bpb, 1.0)]
    if style == "halves":
        half = bpb / 2 if bpb % 2 == 0 else bpb
        return [(b, half, 1.0 if b == 0 else 0.9) for b in np.arange(0, bpb, half)]
    if style == "quarters":
        return [(float(b), 1.0, 1.0 if b == 0 else 0.85) for b in range(bpb)]
    if style == "eighths":
        return [(b, 0.5, 1.0 if b == 0 else (0.9 if b % 1 == 0 else 0.75)) for b in eighths]
    if style == "offbeats":
        return [(b + 0.5, 0.4, 0.9) for b in range(bpb)]
    if style == "backbeat":  # 2 and 4 (in odd metres: every beat but the first, as in a waltz)
        beats = range(1, bpb, 2) if bpb % 2 == 0 else range(1, bpb)
        return [(float(b), 0.8, 0.95) for b in beats]
    if style == "charleston":
        return [(0.0, 1.5, 1.0), (1.5, 1.0, 0.85)] + ([(3.0, 0.5, 0.8)] if bpb >= 4 else [])
    # "syncopated": a random pattern on the eighth grid (kept for the whole song by the caller)
    hits = rng.random(len(eighths)) < rng.uniform(0.35, 0.65)
    hits[0] = True
    on = [e for e, h in zip(eighths, hits) if h]
    ends = on[1:] + [float(bpb)]
    return [(b, max(0.5, e - b), 1.0 if b == 0 else (0.9 if b % 1 == 0 else 0.8)) for b, e in zip(on, ends)]


def _bass_part(rng, grid: _Grid, bars, active: np.ndarray, *_) -> tuple[np.ndarray, str]:
    style = str(rng.choice(["roots", "root_fifth", "octaves", "walking", "syncopated", "eighths"],
                           p=[0.2, 0.2, 0.12, 0.12, 0.2, 0.16]))
    if grid.bpb % 2 == 1 and style == "root_fifth":
        style = "roots"
    base = int(rng.integers(28, 36))  # lowest root register E1..B1
    gate = float(rng.uniform(0.55, 0.95))
    vel0 = float(rng.uniform(80, 110))
    rows: list[tuple[float, float, int, float]] = []
    sync = _rhythm(rng, grid.bpb, "syncopated")
    root_rhythm = _rhythm(rng, grid.bpb, str(rng.choice(["whole", "halves", "quarters"])))
    for b in _played(grid, active):
        for ci, chord in enumerate(bars[b]):
            span = (0.0, grid.bpb) if len(bars[b]) == 1 else ((0.0, grid.bpb / 2), (grid.bpb / 2, grid.bpb))[ci]
            root = base + (chord["root"] - base) % 12
            fifth = root + (chord["tones"][2] - chord["root"]) % 12
            nxt_chord = bars[b + 1][0] if b + 1 < len(bars) else chord
            nxt_root = base + (nxt_chord["root"] - base) % 12
            if style == "roots":
                pat = [(x, ln, acc, root) for x, ln, acc in root_rhythm]
            elif style == "root_fifth":
                half = grid.bpb / 2
                pat = [(0.0, half, 1.0, root), (half, half, 0.9, fifth if rng.random() < 0.8 else root + 12)]
            elif style == "octaves":
                pat = [(x, 0.5, 1.0 if i % 2 == 0 else 0.8, root + 12 * (i % 2))
                       for i, x in enumerate(np.arange(0, grid.bpb, 0.5))]
            elif style == "eighths":
                pat = [(x, 0.5, 1.0 if x % 1 == 0 else 0.8, root) for x in np.arange(0, grid.bpb, 0.5)]
            elif style == "walking":
                scale_pcs = sorted(set(chord["tones"]) | {(chord["root"] + 2) % 12, (chord["root"] + 9) % 12})
                pool = _pitches(scale_pcs, root - 5, root + 12)
                pat = []
                for beat in range(grid.bpb):
                    if beat == 0:
                        p = root
                    elif beat == grid.bpb - 1:
                        p = nxt_root + int(rng.choice([-1, 1, -2, 2]))  # approach note
                    else:
                        p = int(rng.choice(pool))
                    pat.append((float(beat), 1.0, 1.0 if beat == 0 else 0.85, p))
            else:
                pat = [(x, ln, acc, root if rng.random() < 0.7 else int(rng.choice([fifth, root + 12])))
                       for x, ln, acc in sync]
            if not any(abs(x - span[0]) < 1e-9 for x, *_ in pat):  # a chord change always gets its root
                pat = [(span[0], span[1] - span[0], 0.95, root)] + pat
            for x, ln, acc, p in pat:
                if not span[0] <= x < span[1]:
                    continue
                ln = min(ln, span[1] - x)
                t0 = grid.t(b, x)
                rows.append((t0, t0 + max(0.05, ln * grid.beat * gate), int(np.clip(p, 23, 60)), vel0 * acc))
    return _rows(rows), style


def _comp_part(rng, grid: _Grid, bars, active: np.ndarray, family: str, *_) -> tuple[np.ndarray, str]:
    guitar = family in ("clean_guitar", "acoustic_guitar", "driven_guitar")
    style = str(rng.choice(["whole", "halves", "quarters", "eighths", "offbeats", "backbeat", "charleston",
                            "syncopated"], p=[0.1, 0.14, 0.14, 0.14, 0.1, 0.08, 0.1, 0.2]))
    if grid.bpb < 4 and style == "charleston":
        style = "quarters"
    rhythm = _rhythm(rng, grid.bpb, style)
    strum = guitar and rng.random() < 0.85
    center = float(rng.uniform(55, 67)) if not guitar else float(rng.uniform(55, 62))
    n_voices = int(rng.integers(3, 5)) if not strum else int(rng.integers(4, 7))
    gate = float(rng.uniform(0.5, 0.98))
    vel0 = float(rng.uniform(65, 100))
    strum_ms = float(rng.uniform(6, 22))
    rows, prev = [], None
    for b in _played(grid, active):
        for x, ln, acc in rhythm:
            chord = _chord_at(bars, b, x, grid.bpb)
            if strum:
                v = _guitar_voicing(chord, center - 12, n_voices)
            else:
                v = _voicing(chord["tones"], center, n_voices, prev)
            prev = v
            t0 = grid.t(b, x)
            dur = max(0.06, ln * grid.beat * gate)
            order = v
            if strum:
                up = (x % 1) >= 0.5 and style in ("eighths", "syncopated", "offbeats")
                order = v[::-1] if up else v
            for i, p in enumerate(order):
                dt = i * strum_ms * 1e-3 * (0.6 if strum and (x % 1) >= 0.5 else 1.0) if strum else 0.0
                rows.append((t0 + dt, t0 + dur, int(p), vel0 * acc * (0.92 if strum and up else 1.0)))
    return _rows(rows), style + ("_strum" if strum else "_block")


def _power_part(rng, grid: _Grid, bars, active: np.ndarray, *_) -> tuple[np.ndarray, str]:
    style = str(rng.choice(["chug", "whole", "halves", "syncopated"], p=[0.4, 0.2, 0.2, 0.2]))
    rhythm = _rhythm(rng, grid.bpb, {"chug": "eighths"}.get(style, style))
    base = int(rng.integers(40, 47))
    gate = 0.45 if style == "chug" else float(rng.uniform(0.7, 0.98))
    vel0 = float(rng.uniform(80, 110))
    octave = rng.random() < 0.6
    rows = []
    for b in _played(grid, active):
        for x, ln, acc in rhythm:
            chord = _chord_at(bars, b, x, grid.bpb)
            root = base + (chord["root"] - base) % 12
            t0 = grid.t(b, x)
            dur = max(0.06, ln * grid.beat * gate)
            for i, p in enumerate([root, root + 7] + ([root + 12] if octave else [])):
                rows.append((t0 + i * 0.004, t0 + dur, p, vel0 * acc))
    return _rows(rows), "power_" + style


def _arp_part(rng, grid: _Grid, bars, active: np.ndarray, *_) -> tuple[np.ndarray, str]:
    rate = float(rng.choice([0.5, 0.25, 1.0 / 3.0], p=[0.5, 0.35, 0.15]))
    shape = str(rng.choice(["up", "down", "updown", "random", "pattern"]))
    lo = int(rng.integers(55, 67))
    span = int(rng.choice([12, 19, 24]))
    gate = float(rng.uniform(0.5, 1.6))
    vel0 = float(rng.uniform(60, 95))
    pattern = rng.integers(0, 6, 8)
    rows = []
    steps = np.arange(0.0, grid.bpb - 1e-9, rate)
    for b in _played(grid, active):
        for i, x in enumerate(steps):
            chord = _chord_at(bars, b, x, grid.bpb)
            pool = _pitches(chord["tones"], lo, lo + span)
            if not len(pool):
                continue
            m = len(pool)
            if shape == "up":
                k = i % m
            elif shape == "down":
                k = m - 1 - i % m
            elif shape == "updown":
                cyc = max(1, 2 * m - 2)
                k = i % cyc
                k = k if k < m else cyc - k
            elif shape == "random":
                k = int(rng.integers(m))
            else:
                k = int(pattern[i % len(pattern)]) % m
            t0 = grid.t(b, x)
            acc = 1.0 if x % 1 == 0 else 0.85
            rows.append((t0, t0 + rate * grid.beat * gate, int(pool[k]), vel0 * acc))
    return _rows(rows), f"arp_{shape}_{rate:.2f}"


def _pad_part(rng, grid: _Grid, bars, active: np.ndarray, *_) -> tuple[np.ndarray, str]:
    center = float(rng.uniform(55, 70))
    n_voices = int(rng.integers(3, 5))
    vel0 = float(rng.uniform(55, 90))
    rows, prev = [], None
    for b in _played(grid, active):
        chords = bars[b]
        for ci, chord in enumerate(chords):
            x0 = 0.0 if ci == 0 else grid.bpb / 2
            x1 = grid.bpb if ci == len(chords) - 1 else grid.bpb / 2
            v = _voicing(chord["tones"], center, n_voices, prev)
            prev = v
            t0, t1 = grid.t(b, x0), grid.t(b, x1)
            for p in v:
                rows.append((t0, t1 - 0.01, int(p), vel0))
    return _rows(rows), "pad_sustain"


def _lead_part(rng, grid: _Grid, bars, active: np.ndarray, _family: str, mode: str,
               tonic: int) -> tuple[np.ndarray, str]:
    lo = int(rng.integers(60, 72))
    scale = _pitches([(tonic + s) % 12 for s in MODES[mode]], lo, lo + 17)
    durs = np.array([0.5, 1.0, 1.5, 2.0, 0.25])
    pd = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    if rng.random() < 0.5:
        pd = np.array([0.25, 0.35, 0.15, 0.2, 0.05])
    vel0 = float(rng.uniform(75, 105))
    gate = float(rng.uniform(0.7, 0.98))
    phrase_bars = int(rng.choice([1, 2, 2, 4]))
    rest_p = float(rng.uniform(0.2, 0.5))
    motif: list[tuple[float, float, int]] | None = None
    rows = []
    idx = int(rng.integers(len(scale)))
    for b0 in range(0, grid.n_bars, phrase_bars):
        if not active[b0] or rng.random() < rest_p:
            continue
        if motif is not None and rng.random() < 0.35:  # repeat the last phrase (same scale steps)
            phrase = motif
        else:
            phrase = []
            x = float(rng.choice([0.0, 0.0, 0.5, 1.0]))
            end = phrase_bars * grid.bpb - float(rng.choice([0.0, 1.0, 2.0]))
            while x < end:
                d = float(rng.choice(durs, p=pd / pd.sum()))
                d = min(d, end - x)
                if d <= 0:
                    break
                if rng.random() < 0.12:  # a rest inside the phrase
                    x += d
                    continue
                bar = b0 + int(x // grid.bpb)
                if bar >= grid.n_bars:
                    break
                beat = x % grid.bpb
                chord = _chord_at(bars, bar, beat, grid.bpb)
                if beat % 1 == 0 and rng.random() < 0.6:  # strong beats: nearest chord tone
                    tones = np.flatnonzero(np.isin(scale % 12, chord["tones"]))
                    if len(tones):
                        idx = int(tones[np.argmin(np.abs(tones - idx))])
                else:
                    idx = int(np.clip(idx + rng.choice([-2, -1, -1, 1, 1, 2, 0, 3, -3]), 0, len(scale) - 1))
                phrase.append((x, d, idx))
                x += d
            motif = phrase
        for x, d, k in phrase:
            bar = b0 + int(x // grid.bpb)
            if bar >= grid.n_bars or not active[bar]:
                continue
            t0 = grid.t(bar, x % grid.bpb)
            acc = 1.0 if (x % 1) == 0 else 0.88
            rows.append((t0, t0 + d * grid.beat * gate, int(scale[k]), vel0 * acc))
    return _rows(rows), f"lead_phrases_{phrase_bars}bar"


# --- Arrangement ---

def _activity(rng: np.random.Generator, n_bars: int, p_drop: float) -> np.ndarray:
    """Bars in which a part plays [shape=(n_bars,), bool]: sections of 4 bars dropped with ``p_drop``
    (at least one section kept), sometimes a 1-2 bar gap."""
    act = np.ones(n_bars, bool)
    n_sec = -(-n_bars // 4)
    drop = rng.random(n_sec) < p_drop
    if drop.all():
        drop[int(rng.integers(n_sec))] = False
    for s in np.flatnonzero(drop):
        act[4 * s:4 * s + 4] = False
    if rng.random() < 0.2 and n_bars > 4:
        s = int(rng.integers(n_bars - 1))
        act[s:s + int(rng.integers(1, 3))] = False
    if not act.any():
        act[0] = True
    return act


def _arrangement(rng: np.random.Generator, n_bars: int) -> list[dict[str, Any]]:
    """The song's parts: stem, role, family and the bars each plays."""
    rockish = rng.random() < 0.35
    n_other = int(rng.choice([2, 3, 3, 4, 4, 5]))
    roles = ["comping"] + (["power"] if rockish else [])
    pool = ["comping", "arpeggio", "pad", "lead", "power" if rockish else "comping"]
    while len(roles) < n_other:
        roles.append(str(rng.choice(pool, p=[0.22, 0.2, 0.2, 0.23, 0.15])))
    roles = roles[:n_other]
    has_bass = rng.random() < 0.85
    other_breaks = _activity(rng, n_bars, 0.0)  # whole-"other" breakdowns: 1-2 bar gaps, sometimes
    if rng.random() < 0.15 and n_bars >= 8:
        s = int(rng.integers(n_bars - 2))
        other_breaks[s:s + int(rng.integers(2, 5))] = False
    if not other_breaks.any():
        other_breaks[:] = True
    parts: list[dict[str, Any]] = []
    if has_bass:
        parts.append({"stem": "bass", "role": "bass", "family": "bass",
                      "active": _activity(rng, n_bars, float(rng.choice([0.0, 0.1, 0.2])))})
    used: dict[str, int] = {}
    for role in roles:
        fams = [f for f in ROLE_FAMILIES[role] if used.get(f, 0) < (2 if f == "driven_guitar" else 1)]
        if role == "power":
            family = "driven_guitar"
        elif rockish and role == "comping" and "driven_guitar" in fams and rng.random() < 0.3:
            family = "driven_guitar"
        else:
            family = str(rng.choice(fams or ROLE_FAMILIES[role]))
        used[family] = used.get(family, 0) + 1
        p_drop = {"lead": 0.35, "arpeggio": 0.3, "pad": 0.25}.get(role, 0.15)
        parts.append({"stem": "other", "role": role, "family": family,
                      "active": _activity(rng, n_bars, p_drop) & other_breaks})
    return parts


#: Note generators by role: (rng, grid, bars, active, family, mode, tonic) -> (notes, pattern name).
_PARTS = {"bass": _bass_part, "comping": _comp_part, "power": _power_part, "arpeggio": _arp_part,
          "pad": _pad_part, "lead": _lead_part}


def _render_part(rng, part, grid, bars, mode, tonic, heldout, fonts, n_samples, sr, bass_synth=None):
    """One part's notes, audio (effects, level, pan) and info: (stereo audio, reverb send, info).
    ``bass_synth``: the bass played by :func:`synth_bass` with these settings (every draw from
    ``rng`` as without it, so the other parts stay the same)."""
    role, family, act = part["role"], part["family"], part["active"]
    program = int(rng.choice(INSTRUMENTS[family]["heldout" if heldout else "train"]))
    soundfont = str(fonts[int(rng.integers(len(fonts)))])
    notes, pattern = _PARTS[role](rng, grid, bars, act, family, mode, tonic)
    fx_role = "pad" if role == "pad" else FAMILY_FX[family]
    gain_db = float(rng.uniform(-6.0, 2.0)) + {"pad": -3.0, "lead": 1.0, "bass": 2.0}.get(role, 0.0)
    pan_pos = float(rng.uniform(-0.15, 0.15)) if role in ("bass", "lead") else float(rng.uniform(-0.8, 0.8))
    # rock guitars are often double-tracked: a second take, the two panned apart
    double = (role == "power" or (role == "comping" and "guitar" in family)) and rng.random() < 0.4
    width = float(rng.uniform(0.6, 1.0)) if double else 0.0
    vel_sd = {"pad": 3.0, "arpeggio": 5.0}.get(role, 6.0)
    fx_seed = int(rng.integers(2**31))
    takes = [_humanise(notes, grid, vel_sd) for _ in range(2 if double else 1)]
    synth = bass_synth if role == "bass" else None
    if synth is not None:
        audio = np.concatenate([synth_bass(t, n_samples, sr, synth) for t in takes])
    else:
        audio = np.concatenate([render_notes(soundfont, t, n_samples, program=program, sr=sr) for t in takes])
    y, fx_info = fx.random_chain(audio, sr, np.random.default_rng(fx_seed), fx_role, reverb_on=False)
    y = fx.normalise(y, sr, PART_LEVEL_DB + gain_db)
    if double:
        pan_pos = 0.0
        y = fx.pan(y[:2], -width) + fx.pan(y[2:], width)
    else:
        y = fx.pan(y, pan_pos)
    send = float(fx_info["reverb"]["wet"])
    info = {"stem": part["stem"], "role": role, "family": family, "fx_role": fx_role, "program": program,
            "soundfont": os.path.basename(soundfont), "pattern": pattern, "n_notes": int(len(notes)),
            "active_bars": [int(v) for v in act], "gain_db": gain_db, "pan": pan_pos, "double_tracked": width,
            "reverb_send": send, "fx": fx_info}
    if synth is not None:
        info.update(program=None, soundfont=None, synth=dict(synth))
    return y, send, info


def render_backing(tempo_bpm: float, beats_per_bar: int, n_samples: int, rng: np.random.Generator,
                   heldout: bool = False, sr: int = 44100, *,
                   soundfonts: tuple[str, ...] | None = None,
                   bass_synth: dict[str, float] | None = None) -> tuple[dict, dict]:
    """A song's bass and "other" stems, bars of ``beats_per_bar`` beats at ``tempo_bpm`` from sample
    0, every choice drawn from ``rng`` (``heldout``: the held-out SoundFonts and programs;
    ``soundfonts``: a subset of the allowed ones): ``({"bass", "other"}: float32 [shape=(2,
    n_samples)], info)`` (silent bass when the song has none; ``info``: key, progression, chords per
    bar and each part's settings; ``bass_synth``: the bass line played by :func:`synth_bass` with these
    settings, every other choice as without it). :class:`MixinError` for a missing FluidSynth or
    SoundFont or a bad argument."""
    if not (20.0 <= float(tempo_bpm) <= 400.0):
        raise MixinError(f"render_backing: tempo must be 20-400 bpm, got {tempo_bpm}")
    if not 1 <= int(beats_per_bar) <= 16:
        raise MixinError(f"render_backing: beats_per_bar must be 1-16, got {beats_per_bar}")
    n_samples = int(n_samples)
    if n_samples <= 0:
        raise MixinError(f"render_backing: n_samples must be > 0, got {n_samples}")
    allowed = HELDOUT_SOUNDFONTS if heldout else TRAIN_SOUNDFONTS
    fonts = tuple(allowed if soundfonts is None else soundfonts)
    bad = [f for f in fonts if f not in allowed]
    if bad or not fonts:
        raise MixinError(f"render_backing: {'held-out' if heldout else 'training'} songs must use SoundFonts among"
                         f" {', '.join(allowed)}, got {', '.join(bad) or 'none'}")
    check_fluidsynth()
    for f in fonts:
        check_soundfont(f)
    beats_per_bar = int(beats_per_bar)

    mode = str(rng.choice(list(MODES), p=np.array(list(MODE_WEIGHTS.values()))))
    tonic = int(rng.integers(12))
    prog = _progression(rng, mode, tonic)
    n_bars = max(1, int(np.ceil(n_samples / sr / (60.0 / tempo_bpm * beats_per_bar))))
    bars = _song_chords(rng, prog, n_bars, mode, tonic)
    grid = _Grid(float(tempo_bpm), beats_per_bar, n_bars, rng)
    parts = _arrangement(rng, n_bars)
    stems = {"bass": np.zeros((2, n_samples), np.float32), "other": np.zeros((2, n_samples), np.float32)}
    sends = {"bass": np.zeros((2, n_samples), np.float32), "other": np.zeros((2, n_samples), np.float32)}
    part_info = []
    for part in parts:
        y, send, info = _render_part(rng, part, grid, bars, mode, tonic, heldout, fonts, n_samples, sr,
                                     bass_synth)
        stems[part["stem"]] += (1.0 - send) * y
        sends[part["stem"]] += send * y
        part_info.append(info)

    # the shared room: one impulse response, one convolution per stem that sends to it
    room = {"rt60_s": fx.log_uniform(rng, 0.3, 2.2),
            "predelay_ms": float(rng.uniform(2.0, 35.0)), "damping": float(rng.uniform(0.2, 0.9))}
    ir = fx.reverb_ir(sr, np.random.default_rng(int(rng.integers(2**31))), room["rt60_s"],
                      room["predelay_ms"], room["damping"])
    names = [k for k in ("bass", "other") if np.any(sends[k])]
    if names:
        wet = fx.convolve(np.concatenate([sends[k] for k in names]), ir)
        for i, k in enumerate(names):
            stems[k] += wet[2 * i:2 * i + 2]
    for name in stems:
        stems[name] = np.nan_to_num(stems[name], nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    info = {
        "key": f"{NOTE_NAMES[tonic]} {mode}", "tonic": NOTE_NAMES[tonic], "mode": mode,
        "tempo_bpm": float(tempo_bpm), "beats_per_bar": beats_per_bar, "n_bars": n_bars,
        "swing": grid.swing, "heldout": bool(heldout),
        "progression": [c["symbol"] for c in prog],
        "chords": ["/".join(c["symbol"] for c in bar) for bar in bars],
        "has_bass": parts[0]["role"] == "bass", "reverb": room, "parts": part_info,
        "levels_db": {k: (float(v) if np.isfinite(v := fx.active_rms_db(s, sr)) else None)
                      for k, s in stems.items()},
    }
    return stems, info
