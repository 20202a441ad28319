"""Human drum performances for rendered songs: the Groove MIDI Dataset, read and arranged.

The dataset (Gillick et al., ICML 2019; CC BY 4.0; credit :data:`CREDIT`) lists its MIDI files and
their tempo, metre and train / validation / test split in ``info.csv`` (:func:`load_index`, one split
at a time); every file starts on a bar line. :func:`arrange` loops beats of one pool (session, tempo,
metre) in 4- or 8-bar sections with fills. Notes are float64 [shape=(n_notes, 3)]: onset (s), GM
pitch, velocity (1..127), sorted.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MixinError

log = logging.getLogger("mixin")

#: Credit line that material rendered from the dataset must carry (CC BY 4.0).
CREDIT = "Groove MIDI Dataset, Gillick et al., ICML 2019, CC BY 4.0"
CREDIT_URL = "https://magenta.tensorflow.org/datasets/groove"

#: Where the dataset is looked for by default: ../shared/groove-midi next to the repository.
DEFAULT_GROOVE_DIR = Path(__file__).resolve().parents[4] / "shared" / "groove-midi"

#: The dataset's split names.
SPLITS = ("train", "validation", "test")

#: Section lengths (bars) and the probability of a fill at a section's end.
SECTION_BARS = (4, 8, 8, 8)
FILL_PROBABILITY = 0.6

#: Notes this much before a bar line belong to that bar (flams, pushed downbeats), seconds.
EARLY = 0.06

#: Roland TD-11 notes of the dataset -> General MIDI drum notes (the paper's mapping, keeping
#: side stick, pedal hi-hat, ride bell and the second crash apart).
GMD_TO_GM = {
    36: 36,                      # kick
    38: 38, 40: 40,              # snare head, snare rim -> electric snare / rimshot
    37: 37,                      # side stick (x-stick)
    48: 48, 50: 48,              # tom 1 head / rim -> hi-mid tom
    45: 45, 47: 45,              # tom 2 head / rim -> low tom
    43: 43, 58: 43,              # tom 3 (floor) head / rim -> high floor tom
    46: 46, 26: 46,              # hi-hat open bow / edge
    42: 42, 22: 42,              # hi-hat closed bow / edge
    44: 44,                      # hi-hat pedal
    49: 49, 55: 49,              # crash 1 bow / edge
    57: 57, 52: 57,              # crash 2 bow / edge
    51: 51, 59: 51,              # ride bow / edge
    53: 53,                      # ride bell
    39: 39, 54: 54, 56: 56,      # clap, tambourine, cowbell (rare)
}


@dataclass(frozen=True)
class Groove:
    """One MIDI file of the dataset (a row of info.csv)."""

    path: Path
    name: str            # midi_filename, relative to the dataset folder
    drummer: str
    session: str
    style: str           # e.g. "funk/groove1"
    bpm: float
    beat_type: str       # "beat" or "fill"
    numerator: int
    denominator: int
    duration: float
    split: str

    @property
    def genre(self) -> str:
        """First part of the style ("funk" for "funk/groove1")."""
        return self.style.split("/")[0]

    @property
    def metre(self) -> str:
        """The time signature, e.g. "4/4"."""
        return f"{self.numerator}/{self.denominator}"

    @property
    def bar_seconds(self) -> float:
        """Length of a bar in seconds."""
        return self.numerator * 4.0 / self.denominator * 60.0 / self.bpm

    @property
    def pool_key(self) -> tuple[str, float, int, int]:
        """(session, bpm, numerator, denominator): grooves with the same key form a pool."""
        return (self.session, self.bpm, self.numerator, self.denominator)


def _parse_metre(text):
    try:
        num, den = (int(v) for v in str(text).replace("/", "-").split("-"))
    except ValueError:
        return None
    if num < 1 or den not in (1, 2, 4, 8, 16):
        return None
    return num, den


def load_index(groove_dir: str | os.PathLike | None = None, split: str | None = None) -> list[Groove]:
    """Grooves listed in ``groove_dir/info.csv`` (all, or those of ``split``), in file order.

    Rows with a missing file or unusable fields are skipped with a warning naming them.
    MixinError (one line) if the folder or info.csv is missing or unreadable."""
    gdir = Path(groove_dir) if groove_dir is not None else DEFAULT_GROOVE_DIR
    info = gdir / "info.csv"
    if not info.is_file():
        raise MixinError(f"Groove MIDI Dataset not found: no {info} (download groove-v1.0.0-midionly.zip "
                         f"from {CREDIT_URL} and unpack it there, or give --groove-dir)")
    if split is not None and split not in SPLITS:
        raise MixinError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    out = []
    try:
        with open(info, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise MixinError(f"cannot read {info}: {' '.join(str(e).split())}") from None
    for row in rows:
        if split is not None and row.get("split") != split:
            continue
        try:
            metre = _parse_metre(row["time_signature"])
            bpm = float(row["bpm"])
            g = Groove(path=gdir / row["midi_filename"], name=row["midi_filename"],
                       drummer=row["drummer"], session=row["session"], style=row["style"],
                       bpm=bpm, beat_type=row["beat_type"], numerator=metre[0] if metre else 0,
                       denominator=metre[1] if metre else 0, duration=float(row["duration"]),
                       split=row["split"])
        except (KeyError, TypeError, ValueError):
            log.warning("skipping a row of %s with missing or bad fields: %s", info,
                        ", ".join(f"{k}={v}" for k, v in list(row.items())[:9]))
            continue
        if not metre or not (20 <= bpm <= 400) or g.beat_type not in ("beat", "fill"):
            log.warning("skipping groove %s: unusable metre %r, tempo %r or type %r", g.name,
                        row["time_signature"], row["bpm"], row["beat_type"])
            continue
        out.append(g)
    return out


# --- MIDI ---

_note_cache: dict = {}


def read_midi(path: str | os.PathLike) -> np.ndarray:
    """Drum hits of a MIDI file: float64 [shape=(n, 3)] (onset s, GM pitch, velocity), sorted.

    Note-ons with velocity 0 are note-offs; the dataset's TD-11 notes are mapped to General MIDI
    (:data:`GMD_TO_GM`), unknown notes dropped. MixinError (one line, naming the file) if mido
    cannot read it. Cached per process."""
    key = os.path.realpath(path)
    hit = _note_cache.get(key)
    if hit is not None:
        return hit
    import mido  # noqa: PLC0415 (only needed when rendering)

    try:
        mid = mido.MidiFile(path)
        t, rows = 0.0, []
        for msg in mid:  # merged tracks; msg.time = seconds since the previous message
            t += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                gm = GMD_TO_GM.get(msg.note)
                if gm is not None:
                    rows.append((t, gm, msg.velocity))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise MixinError(f"cannot read MIDI file {path}: {reason}") from None
    notes = np.array(rows, dtype=np.float64).reshape(-1, 3)
    notes = notes[np.argsort(notes[:, 0], kind="stable")]
    _note_cache[key] = notes
    return notes


def _usable(groove, bad):
    """Notes of a groove, or None (warning naming the file, once) if its MIDI is unreadable."""
    if groove.name in bad:
        return None
    try:
        notes = read_midi(groove.path)
    except MixinError as e:
        log.warning("skipping groove %s: %s", groove.name, e)
        bad.add(groove.name)
        return None
    if len(notes) == 0:
        log.warning("skipping groove %s: no drum notes", groove.name)
        bad.add(groove.name)
        return None
    return notes


def _n_bars(notes, bar_s, beat_type):
    """Whole bars a file covers: beats -> bars up to the last note (at least 1); fills -> the bars
    holding their notes (a last hit within EARLY of a bar line belongs to the next bar)."""
    last = float(notes[-1, 0])
    return max(1, int(math.ceil((last + EARLY) / bar_s - 1e-9)) if beat_type == "fill"
               else int(math.floor((last + EARLY) / bar_s)) or 1)


def _excerpt(notes, start_s, length_s):
    """Notes with onsets in [start_s - EARLY, start_s + length_s - EARLY), times relative to start_s."""
    sel = (notes[:, 0] >= start_s - EARLY) & (notes[:, 0] < start_s + length_s - EARLY)
    out = notes[sel].copy()
    out[:, 0] -= start_s
    return out


# --- arranging a song ---

def _section(rng, current, pool, fills, bad, bar, length, bar_s, first):
    """One section of ``length`` bars from ``bar``: its beat (``current``, sometimes another of the
    pool) looped from a random bar, and maybe a fill at its end: (beat, note arrays, section records)."""
    if bar > 0 and len(pool) > 1 and rng.random() < 0.35:
        cand = pool[int(rng.integers(len(pool)))]
        if _usable(cand, bad) is not None:
            current = cand
    notes = _usable(current, bad)
    if notes is None:  # became unusable (should not happen: checked above)
        current, notes = first, _usable(first, bad)
    total = _n_bars(notes, bar_s, "beat")
    body, fill, parts, sections = length, None, [], []
    if fills and length >= 2 and rng.random() < FILL_PROBABILITY:
        cand = fills[int(rng.integers(min(len(fills), 4)))] if rng.random() < 0.8 else \
            fills[int(rng.integers(len(fills)))]
        fnotes = _usable(cand, bad)
        if fnotes is not None:
            fbars = min(_n_bars(fnotes, bar_s, "fill"), 2, length - 1)
            fill = (cand, fnotes, fbars)
            body = length - fbars
    # loop the beat from a random bar (whole-file loops when the section is longer)
    b, pos = 0, int(rng.integers(total)) if total > 1 else 0
    while b < length:
        take = min(length - b, total - pos)
        if fill is not None and b + take > body:
            take = max(body - b, 0) or take  # stop at the fill (then play the fill bars)
        ex = _excerpt(notes, pos * bar_s, take * bar_s)
        ex[:, 0] += (bar + b) * bar_s
        if fill is not None and b >= body:
            # fill bars: the beat goes on until the fill starts, then the fill takes over
            ex = ex[ex[:, 0] < (bar + body) * bar_s + fill[1][0, 0] - 0.05]
        else:
            sections.append({"bar": bar + b, "bars": take, "file": current.name, "from_bar": pos,
                             "kind": "beat"})
        parts.append(ex)
        b += take
        pos = (pos + take) % total
    if fill is not None:
        g, fnotes, fbars = fill
        end = fbars * bar_s
        ex = _excerpt(fnotes, 0.0, end + 2 * EARLY)
        # past the last fill bar only the crash on the next downbeat is kept
        ex = ex[(ex[:, 0] < end - EARLY) | np.isin(ex[:, 1], (49, 57))]
        ex[:, 0] += (bar + body) * bar_s
        parts.append(ex)
        sections.append({"bar": bar + body, "bars": fbars, "file": g.name, "from_bar": 0, "kind": "fill"})
    return current, parts, sections


def arrange(grooves: Sequence[Groove], duration: float,
            rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Arrange a song of ``duration`` seconds from ``grooves`` (one split's :func:`load_index`): a
    random first beat (unreadable files skipped with a warning), then sections of its pool's beats
    and its session's fills. Returns ``(notes, plan)``: notes in song time, sorted; plan: 'groove'
    (the first beat), 'files', its style, drummer, session, split, tempo and metre, 'bar_seconds',
    'bars', 'sections' ([{'bar', 'bars', 'file', 'from_bar', 'kind'}]). MixinError if no beat of
    the split can be read."""
    beats = [g for g in grooves if g.beat_type == "beat"]
    bad = set()
    order = rng.permutation(len(beats)) if beats else []
    first = next((beats[int(k)] for k in order if _usable(beats[int(k)], bad) is not None), None)
    if first is None:
        raise MixinError(f"no readable drum groove (beat) among {len(beats)} files of the split")
    # the first beat's pool (beats of its session, tempo and metre) and fills (its genre first)
    pool = [g for g in beats if g.pool_key == first.pool_key and g.name not in bad]
    fills = sorted((g for g in grooves if g.beat_type == "fill" and g.pool_key == first.pool_key),
                   key=lambda g: g.genre != first.genre)
    bar_s = first.bar_seconds
    n_bars = int(math.ceil(duration / bar_s - 1e-9))
    parts, sections, bar, current = [], [], 0, first
    while bar < n_bars:
        length = min(int(rng.choice(SECTION_BARS)), n_bars - bar)
        current, p, sec = _section(rng, current, pool, fills, bad, bar, length, bar_s, first)
        parts += p
        sections += sec
        bar += length
    notes = np.concatenate(parts) if parts else np.zeros((0, 3))
    notes = notes[(notes[:, 0] >= 0) & (notes[:, 0] < duration)]
    notes = notes[np.argsort(notes[:, 0], kind="stable")]
    plan = {"groove": first.name, "files": sorted({s["file"] for s in sections}), "style": first.style,
            "genre": first.genre, "drummer": first.drummer, "session": first.session,
            "split": first.split, "tempo": first.bpm, "metre": first.metre,
            "beats_per_bar": first.numerator, "bar_seconds": bar_s, "bars": n_bars, "sections": sections}
    return notes, plan
