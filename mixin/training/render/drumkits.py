"""Recorded drum kits for rendered songs: Hydrogen sample kits and SoundFont drum kits.

Hydrogen kits with an allowed licence (:data:`ALLOWED_LICENCE`, from the Debian copyright files)
are played by :class:`HydrogenKit` with numpy; SoundFont kits (:data:`SOUNDFONT_KITS`) by FluidSynth.
:data:`HELDOUT` kits serve only validation and test songs (:func:`kit_pool`); an unreadable kit is
skipped with a warning. Notes are float64 [shape=(n, 3)] (onset s, GM pitch, velocity 1..127); audio
is float32 [shape=(2, n_samples)].
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ... import io as audio, params
from ...errors import MixinError
from . import fluid

log = logging.getLogger("mixin")

#: Folders searched for Hydrogen kits (``*/drumkit.xml``).
HYDROGEN_DIRS = ("/usr/share/hydrogen/data/drumkits",)

#: Debian copyright files that state the kits' licences, by package.
COPYRIGHT_FILES = {"hydrogen-drumkits": "/usr/share/doc/hydrogen-drumkits/copyright",
                   "hydrogen-data": "/usr/share/doc/hydrogen-data/copyright"}

#: Licences (Debian short names) a kit must have to be used.
ALLOWED_LICENCE = re.compile(
    r"^(CC0(-1\.0)?|CC-BY(-SA)?-[0-9.]+(-[a-z]+)?|GPL-2\+ with composition exception)$", re.IGNORECASE)

#: Hydrogen kits that are electronic (the rest count as acoustic).
ELECTRONIC_HYDROGEN = {"Audiophob", "TR808EmulationKit", "HardElectro1", "ElectricEmpireKit", "VariBreaks"}

SF2 = "/usr/share/sounds/sf2"
SF3 = "/usr/share/sounds/sf3"

#: GM drum kit presets (bank 128) used from GM SoundFonts: (preset, name, family).
GM_KIT_PRESETS = ((0, "Standard", "acoustic"), (8, "Room", "acoustic"), (16, "Power", "acoustic"),
                  (24, "Electronic", "electronic"), (25, "TR-808", "electronic"),
                  (32, "Jazz", "acoustic"), (40, "Brush", "acoustic"))

#: SoundFont kits: (file, bank, preset, name, family, licence, Debian package). Bank 128 = a GM
#: drum kit played on the percussion channel; the avldrums kits are preset 0 of bank 0.
SOUNDFONT_KITS = (
    (f"{SF2}/Black_Pearl_4_LV2.sf2", 0, 0, "Black_Pearl_4", "acoustic", "CC-BY-SA-3.0",
     "avldrums.lv2-soundfont"),
    (f"{SF2}/Red_Zeppelin_4_LV2.sf2", 0, 0, "Red_Zeppelin_4", "acoustic", "CC-BY-SA-3.0",
     "avldrums.lv2-soundfont"),
    *((f"{SF2}/FluidR3_GM.sf2", 128, p, f"FluidR3_GM {n}", fam, "MIT", "fluid-soundfont-gm")
      for p, n, fam in GM_KIT_PRESETS),
    *((f"{SF3}/MuseScore_General.sf3", 128, p, f"MuseScore_General {n}", fam, "MIT",
       "musescore-general-soundfont") for p, n, fam in GM_KIT_PRESETS),
    *((f"{SF2}/TimGM6mb.sf2", 128, p, f"TimGM6mb {n}", fam, "GPL-2", "timgm6mb-soundfont")
      for p, n, fam in GM_KIT_PRESETS),
)

#: Kits used only for validation and test songs (kit names as in :class:`KitSpec`.name).
HELDOUT = frozenset({"hydrogen:BJA_Pacific", "hydrogen:Audiophob", "sf2:Red_Zeppelin_4",
                     *(f"sf2:TimGM6mb {n}" for _, n, _ in GM_KIT_PRESETS)})

#: Relative chance of a kit being drawn: multi-sampled kits more often than GM presets.
WEIGHTS = {"hydrogen": 3.0, "avldrums": 4.0, "gm": 1.0, "gm-electronic": 1.5}

#: Debian packages of every kit source (for the error message when none is usable).
APT_PACKAGES = ("hydrogen-drumkits", "hydrogen-data", "avldrums.lv2-soundfont", "fluid-soundfont-gm",
                "musescore-general-soundfont", "timgm6mb-soundfont", "fluidsynth")

#: Longest sample kept per hit (s), and the fade when an open hi-hat is choked (s).
MAX_SAMPLE_SECONDS = 6.0
CHOKE_FADE = 0.015


@dataclass(frozen=True)
class KitSpec:
    """A usable kit: where it is, how to play it, its licence and whether it is held out."""

    name: str            # "hydrogen:<folder>" or "sf2:<name>"
    kind: str            # "hydrogen" or "sf2"
    path: str            # kit folder or SoundFont file
    family: str          # "acoustic" or "electronic"
    licence: str
    package: str
    bank: int = 0
    preset: int = 0
    heldout: bool = False
    weight: float = 1.0

    def record(self) -> dict[str, Any]:
        """What songs.json says about the kit."""
        d = {"name": self.name, "kind": self.kind, "path": self.path, "family": self.family,
             "licence": self.licence, "package": self.package, "heldout": self.heldout}
        if self.kind == "sf2":
            d.update(bank=self.bank, preset=self.preset)
        return d


# --- licences (Debian machine-readable copyright files) ---

def parse_copyright(text: str) -> list[tuple[list[str], str]]:
    """``Files:`` stanzas of a DEP-5 copyright file: [(patterns, licence short name)]."""
    stanzas, cur, key = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if "files" in cur:
                stanzas.append((cur["files"].split(), cur.get("license", "").split("\n")[0].strip()))
            cur, key = {}, None
            continue
        if line[0] in " \t":
            if key:
                cur[key] += "\n" + line.strip()
            continue
        k, _, v = line.partition(":")
        key = k.strip().lower()
        cur[key] = v.strip()
    return stanzas


def _norm(s):
    return re.sub(r"[^a-z0-9]", "", s.lower())


def kit_licence(folder: str | os.PathLike, copyright_files: Mapping[str, str | os.PathLike] | None = None,
                kit_name: str | None = None) -> tuple[str | None, str | None]:
    """(licence, package) of the Hydrogen kit in ``folder`` from the Debian copyright files.

    A stanza naming the kit (``drumkits/NAME.h2drumkit``; ``?`` and ``*`` are wildcards, and
    "circAfrique" names the folder "circAfrique v4") wins over a ``Files: *`` stanza of the
    package that installed the folder. (None, None) when no stanza applies."""
    files = COPYRIGHT_FILES if copyright_files is None else copyright_files
    name = Path(folder).name
    names = {_norm(name)} | ({_norm(kit_name)} if kit_name else set())
    owner = _owner_package(folder, files)
    fallback = (None, None)
    for package, path in files.items():
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for patterns, licence in parse_copyright(text):
            for pat in patterns:
                if pat == "*":
                    if owner == package:
                        fallback = (licence, package)
                    continue
                stem = Path(pat).name
                if not stem.endswith(".h2drumkit"):
                    continue
                stem = stem[: -len(".h2drumkit")]
                if fnmatch.fnmatchcase(name, stem) or any(
                        n == _norm(stem) or (n.startswith(_norm(stem)) and len(_norm(stem)) >= 6)
                        for n in names):
                    return licence, package
    return fallback


def _owner_package(folder, packages=COPYRIGHT_FILES):
    """The Debian package (of ``packages``) whose file list holds ``folder`` (None if unknown)."""
    folder = str(folder).rstrip("/")
    for package in packages:
        try:
            with open(f"/var/lib/dpkg/info/{package}.list", encoding="utf-8", errors="replace") as fh:
                if any(line.rstrip("\n") == folder for line in fh):
                    return package
        except OSError:
            continue
    return None


# --- Hydrogen kits ---

#: GM drum note -> kit piece.
GM_PIECES = {36: "kick", 35: "kick", 38: "snare", 40: "snare", 37: "sidestick", 39: "clap",
             42: "hh_closed", 44: "hh_pedal", 46: "hh_open", 50: "tom_high", 48: "tom_high",
             47: "tom_mid", 45: "tom_mid", 43: "tom_low", 41: "tom_low", 49: "crash",
             57: "crash2", 55: "crash", 52: "crash2", 51: "ride", 59: "ride", 53: "ride_bell",
             56: "cowbell"}

#: Pieces a kit lacks are played by these (first available), else the note is skipped.
FALLBACK = {"hh_pedal": ("hh_closed",), "hh_open": ("hh_closed",), "crash2": ("crash", "ride"),
            "crash": ("ride",), "ride": ("ride_bell", "crash"), "ride_bell": ("ride",),
            "tom_high": ("tom_mid", "tom_low"), "tom_mid": ("tom_high", "tom_low"),
            "tom_low": ("tom_mid", "tom_high"), "hh_closed": ("hh_pedal",)}

#: Gain applied when a piece stands in for another (a pedal hat for a closed one, ...).
FALLBACK_GAIN = {"hh_pedal": 0.8}

#: Instruments with these words are not used (rolls, chokes, effects, half-open hats).
_SKIP = re.compile(r"\b(roll|choke|flam|fx|zap|swish|noise|flink)\b")


#: (pattern, piece) rules of :func:`piece_of`, first match wins; a piece may be a list of rules
#: of its own (a pattern "" always matches).
_PIECE_RULES = (
    (r"kick|bass ?drum|\bbd\b", "kick"), ("clap", "clap"), ("cowbell", "cowbell"),
    (r"hi ?hat|\bhh|\bhat\b|hihat",
     ((r"\b(free|semi|half)\b", None), ("pedal|foot", "hh_pedal"), ("open", "hh_open"), ("", "hh_closed"))),
    ("snare", "snare"), (r"stick|rim ?click|side", "sidestick"),
    ("ride", (("bell|cup", "ride_bell"), ("", "ride"))), (r"\bbell\b|\bcup\b", "ride_bell"),
    (r"crash|cymbal|splash|china", "crash"),
    ("tom", ((r"floor|low|\blo\b", "tom_low"), ("mid", "tom_mid"), ("hi|high", "tom_high"), ("", "tom_mid"))),
)


def piece_of(name: str) -> str | None:
    """Kit piece an instrument name stands for ('kick', 'snare', 'hh_open', ...) or None."""
    n = name.lower().replace("-", " ").replace("_", " ")
    if _SKIP.search(n):
        return None
    for pattern, piece in _PIECE_RULES:
        if re.search(pattern, n):
            return piece if isinstance(piece, str) else next(p for sub, p in piece if re.search(sub, n))
    return None


@dataclass
class Layer:
    lo: float
    hi: float
    gain: float
    file: str
    audio: np.ndarray | None = None   # float32 [shape=(channels, n)] at 44.1 kHz


@dataclass
class Instrument:
    name: str
    piece: str
    gain: float
    layers: list = field(default_factory=list)

    def layer(self, v: float) -> Layer:
        """The layer for velocity ``v`` in 0..1 (the nearest one when none covers it)."""
        for ly in self.layers:
            if ly.lo <= v <= ly.hi:
                return ly
        return min(self.layers, key=lambda ly: min(abs(ly.lo - v), abs(ly.hi - v)))


def _strip_ns(root):
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _float(el, tag, default):
    t = el.findtext(tag)
    try:
        v = float(t)
        return v if math.isfinite(v) else default
    except (TypeError, ValueError):
        return default


class HydrogenKit:
    """A Hydrogen drum kit folder: its instruments by piece, samples loaded on first use."""

    def __init__(self, folder):
        self.folder = Path(folder)
        xml = self.folder / "drumkit.xml"
        try:
            root = _strip_ns(ET.parse(xml).getroot())
        except (OSError, ET.ParseError) as e:
            raise MixinError(f"cannot read drum kit {xml}: {' '.join(str(e).split())}") from None
        self.name = (root.findtext("name") or self.folder.name).strip()
        self.pieces = {}
        for inst in root.iter("instrument"):
            name = (inst.findtext("name") or "").strip()
            piece = piece_of(name)
            if piece is None or (inst.findtext("isMuted") or "").strip() == "true":
                continue
            gain = _float(inst, "volume", 1.0) * _float(inst, "gain", 1.0)
            layers = []
            for ly in inst.iter("layer"):
                f = (ly.findtext("filename") or "").strip()
                if f:
                    layers.append(Layer(_float(ly, "min", 0.0), _float(ly, "max", 1.0),
                                        _float(ly, "gain", 1.0), f))
            if not layers:  # old format: one file per instrument
                f = (inst.findtext("filename") or "").strip()
                if f:
                    layers.append(Layer(0.0, 1.0, 1.0, f))
            if layers and gain > 0:
                self.pieces.setdefault(piece, []).append(Instrument(name, piece, gain, layers))
        missing = [p for p in ("kick", "snare") if p not in self.pieces]
        if not any(p in self.pieces for p in ("hh_closed", "hh_pedal", "ride")):
            missing.append("hi-hat or ride")
        if missing:
            raise MixinError(f"{self.folder} is not a drum kit (no {', '.join(missing)})")

    def load(self, instrument: Instrument) -> None:
        """Read the samples of ``instrument`` (once). MixinError naming a missing/bad file."""
        for ly in instrument.layers:
            if ly.audio is not None:
                continue
            path = self.folder / ly.file
            x, sr = audio.read_audio(path)
            if sr != params.SAMPLE_RATE:
                x = audio.resample(x, sr, params.SAMPLE_RATE)
            x = x[: int(MAX_SAMPLE_SECONDS * params.SAMPLE_RATE)]
            if x.shape[1] > 2:
                x = x[:, :2]
            loud = np.flatnonzero(np.abs(x).max(axis=1) > 1e-4)
            x = x[: loud[-1] + 1] if len(loud) else x[:1]
            ly.audio = np.ascontiguousarray(x.T, dtype=np.float32)

    def _loaded(self, inst: Instrument) -> bool:
        """Load ``inst``'s samples; False (with a warning) when they cannot be read."""
        try:
            self.load(inst)
            return True
        except MixinError as e:
            log.warning("drum kit %s: skipping instrument %r: %s", self.folder, inst.name, e)
            return False

    def choose(self, rng: np.random.Generator) -> dict[str, Instrument]:
        """One instrument per piece for a song (a random one of several candidates), with the
        samples loaded; a piece whose samples cannot be read is dropped with a warning."""
        chosen = {}
        for piece, cands in sorted(self.pieces.items()):
            order = rng.permutation(len(cands))
            if len(order):
                inst = cands[int(order[0])]
                if self._loaded(inst):
                    chosen[piece] = inst
                else:
                    cands.remove(inst)
        # a second crash for GM note 57: another crash instrument if the kit has one
        crashes = self.pieces.get("crash", [])
        if len(crashes) > 1 and "crash" in chosen:
            other = [c for c in crashes if c is not chosen["crash"]]
            inst = other[int(rng.integers(len(other)))]
            if self._loaded(inst):
                chosen["crash2"] = inst
        return chosen


_kits: dict = {}


def hydrogen_kit(folder: str | os.PathLike) -> HydrogenKit:
    """The :class:`HydrogenKit` of ``folder`` (parsed once per process)."""
    key = os.path.realpath(folder)
    if key not in _kits:
        _kits[key] = HydrogenKit(folder)
    return _kits[key]


def _pan_positions(pieces, rng):
    """Random stereo positions (-1 left .. 1 right) of the kit pieces for one song."""
    side = 1.0 if rng.random() < 0.5 else -1.0     # drummer's or audience's view
    width = rng.uniform(0.4, 1.0)
    pos = {"kick": rng.uniform(-0.05, 0.05), "snare": rng.uniform(-0.15, 0.15),
           "hh_closed": side * rng.uniform(0.25, 0.6), "ride": -side * rng.uniform(0.3, 0.65),
           "crash": rng.uniform(-0.7, 0.7), "tom_high": side * rng.uniform(0.1, 0.35),
           "tom_mid": -side * rng.uniform(0.0, 0.25), "tom_low": -side * rng.uniform(0.35, 0.7),
           "clap": rng.uniform(-0.2, 0.2), "cowbell": rng.uniform(-0.5, 0.5)}
    pos["crash2"] = -pos["crash"] * rng.uniform(0.5, 1.0)
    pos["hh_open"] = pos["hh_pedal"] = pos["hh_closed"]
    pos["sidestick"] = pos["snare"]
    pos["ride_bell"] = pos["ride"]
    return {p: float(np.clip(pos.get(p, 0.0) * width, -1, 1)) for p in pieces}


def _pan_gains(position, channels):
    """(left, right) gains: constant-power pan for a mono sample, balance for a stereo one."""
    if channels == 1:
        a = (position + 1) * math.pi / 4
        return math.cos(a) * math.sqrt(2), math.sin(a) * math.sqrt(2)
    return min(1.0, 1.0 - position), min(1.0, 1.0 + position)


def play_hydrogen(kit: HydrogenKit, notes: np.ndarray, n_samples: int, rng: np.random.Generator,
                  velocity_gamma: float = 1.5,
                  chosen: dict[str, Instrument] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Play ``notes`` [shape=(n, 3)] on a :class:`HydrogenKit`: (float32 [shape=(2, n_samples)], info).
    Each hit adds its velocity layer's sample times the instrument and layer gains and
    ``(velocity / 127) ** velocity_gamma``, panned per piece; notes the kit cannot play are
    skipped; an open hi-hat is choked by the next closed or pedal hi-hat."""
    sr = params.SAMPLE_RATE
    chosen = kit.choose(rng) if chosen is None else chosen
    pans = _pan_positions(list(chosen), rng)
    out = np.zeros((2, n_samples), dtype=np.float32)
    onsets = np.rint(notes[:, 0] * sr).astype(np.int64) if len(notes) else np.zeros(0, np.int64)
    # choke points: onsets of closed / pedal hats
    hat_pieces = {GM_PIECES.get(int(p)) for p in (42, 44)}
    chokes = np.sort(onsets[[GM_PIECES.get(int(p)) in hat_pieces for p in notes[:, 1]]]) \
        if len(notes) else onsets
    fade = max(1, int(CHOKE_FADE * sr))
    skipped, played = {}, 0
    for (t, pitch, vel), s in zip(notes, onsets):
        want = GM_PIECES.get(int(pitch))
        piece, gain = want, 1.0
        if piece not in chosen:
            piece = next((f for f in FALLBACK.get(want, ()) if f in chosen), None)
            gain = FALLBACK_GAIN.get(piece, 1.0) if piece else 0.0
        if piece is None or s >= n_samples or s < 0:
            skipped[int(pitch)] = skipped.get(int(pitch), 0) + 1
            continue
        inst = chosen[piece]
        v = float(np.clip(vel, 1, 127)) / 127.0
        ly = inst.layer(v)
        x = ly.audio
        stop = min(n_samples, s + x.shape[1])
        if want == "hh_open":
            later = chokes[np.searchsorted(chokes, s, side="right"):]
            if len(later) and later[0] < stop:
                stop = int(later[0])
        seg = x[:, : stop - s]
        g = inst.gain * ly.gain * gain * v ** velocity_gamma
        gl, gr = _pan_gains(pans.get(piece, 0.0), x.shape[0])
        if want == "hh_open" and stop - s < x.shape[1] and stop - s > 0:
            seg = seg.copy()
            k = min(fade, seg.shape[1])
            seg[:, -k:] *= np.linspace(1, 0, k, dtype=np.float32)
        out[0, s:stop] += (g * gl) * seg[0]
        out[1, s:stop] += (g * gr) * seg[-1]
        played += 1
    info = {"instruments": {p: i.name for p, i in sorted(chosen.items())},
            "pans": {p: round(v, 3) for p, v in sorted(pans.items())},
            "velocity_gamma": round(float(velocity_gamma), 3), "hits": played,
            "skipped_notes": {str(k): v for k, v in sorted(skipped.items())}}
    return out, info


# --- SoundFont kits ---

def play_soundfont(spec: KitSpec, notes: np.ndarray, n_samples: int) -> np.ndarray:
    """Play ``notes`` [shape=(n, 3)] with a SoundFont kit: float32 [shape=(2, n)]. GM kits (bank 128)
    play one-shot hits on the percussion channel, the avldrums kits (a melodic preset) notes held 4 s."""
    rows = np.zeros((0, 4))
    if len(notes):
        start = notes[:, 0]
        rows = np.stack([start, start if spec.bank == 128 else start + 4.0, notes[:, 1], notes[:, 2]], axis=1)
    return fluid.render_notes(spec.path, rows, n_samples, program=spec.preset, bank=spec.bank,
                              drums=spec.bank == 128, sr=params.SAMPLE_RATE)


# --- the catalogue ---

_catalogue_cache: dict = {}


def _riff_chunks(fh, pos, end):
    """(id, data offset, size) of the RIFF chunks from ``pos`` to ``end`` of an open file."""
    while pos + 8 <= end:
        fh.seek(pos)
        hdr = fh.read(8)
        if len(hdr) < 8:
            return
        size = struct.unpack("<I", hdr[4:8])[0]
        yield hdr[:4], pos + 8, size
        pos += 8 + size + (size & 1)


def _sf_presets(path):
    """{(bank, preset)} of a SoundFont, read from its RIFF 'phdr' chunk (no synthesizer needed).
    MixinError naming the file when it is not a readable SoundFont."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
                raise MixinError(f"{path}: not a SoundFont (no RIFF sfbk header)")
            for cid, data, size in _riff_chunks(fh, 12, 8 + struct.unpack("<I", head[4:8])[0]):
                if cid == b"LIST" and fh.read(4) == b"pdta":
                    for sid, sdata, ssize in _riff_chunks(fh, data + 4, data + size):
                        if sid == b"phdr":
                            fh.seek(sdata)
                            raw = fh.read(ssize)
                            if len(raw) < ssize:
                                break
                            return {struct.unpack("<HH", raw[k + 20:k + 24])[::-1]
                                    for k in range(0, ssize - 38 + 1, 38)}
                    break
    except OSError as e:
        raise MixinError(f"{path}: cannot read SoundFont ({e.strerror or e})") from None
    raise MixinError(f"{path}: SoundFont without a preset table (truncated or corrupt)")


def _hydrogen_specs(dirs, copyright_files):
    specs = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for folder in sorted(p for p in d.iterdir() if (p / "drumkit.xml").is_file()):
            try:
                kit = hydrogen_kit(folder)
            except MixinError as e:
                if "is not a drum kit" in str(e):
                    log.debug("%s", e)
                else:
                    log.warning("skipping drum kit %s: %s", folder, e)
                continue
            licence, package = kit_licence(folder, copyright_files, kit.name)
            if licence is None or not ALLOWED_LICENCE.match(licence):
                log.debug("drum kit %s not used: licence %s", folder, licence or "unknown")
                continue
            name = f"hydrogen:{folder.name}"
            family = "electronic" if folder.name in ELECTRONIC_HYDROGEN else "acoustic"
            specs.append(KitSpec(name=name, kind="hydrogen", path=str(folder), family=family,
                                 licence=licence, package=package, heldout=name in HELDOUT,
                                 weight=WEIGHTS["hydrogen"]))
    return specs


def _soundfont_specs(kits):
    specs, bad = [], set()
    for path, bank, preset, name, family, licence, package in kits:
        if path in bad or not os.path.exists(path):
            continue
        try:
            presets = _sf_presets(path)
        except MixinError as e:
            log.warning("skipping drum kits of %s: %s", path, e)
            bad.add(path)
            continue
        if (bank, preset) not in presets:
            log.debug("%s has no preset %d:%d (%s)", path, bank, preset, name)
            continue
        full = f"sf2:{name}"
        weight = WEIGHTS["avldrums"] if bank != 128 else \
            WEIGHTS["gm-electronic"] if family == "electronic" else WEIGHTS["gm"]
        specs.append(KitSpec(name=full, kind="sf2", path=path, family=family, licence=licence,
                             package=package, bank=bank, preset=preset, heldout=full in HELDOUT,
                             weight=weight))
    return specs


def catalogue(hydrogen_dirs: Sequence[str | os.PathLike] | None = None,
              soundfont_kits: Sequence[tuple[str, int, int, str, str, str, str]] | None = None,
              copyright_files: Mapping[str, str | os.PathLike] | None = None) -> list[KitSpec]:
    """Every usable kit (allowed licence, readable), held-out ones included; cached per process.

    Defaults: :data:`HYDROGEN_DIRS`, :data:`SOUNDFONT_KITS`, :data:`COPYRIGHT_FILES` (read when
    called)."""
    hydrogen_dirs = HYDROGEN_DIRS if hydrogen_dirs is None else hydrogen_dirs
    soundfont_kits = SOUNDFONT_KITS if soundfont_kits is None else soundfont_kits
    copyright_files = COPYRIGHT_FILES if copyright_files is None else copyright_files
    key = (tuple(map(str, hydrogen_dirs)), tuple(soundfont_kits), tuple(sorted(copyright_files.items())),
           tuple(sorted(HELDOUT)))
    if key not in _catalogue_cache:
        _catalogue_cache[key] = (_hydrogen_specs(hydrogen_dirs, copyright_files)
                                 + _soundfont_specs(soundfont_kits))
    return list(_catalogue_cache[key])


def kit_pool(split: str, **kw: Any) -> list[KitSpec]:
    """Kits of a split: training kits for "train", held-out kits for "validation" and "test".

    MixinError (one line, with the apt-get command) when the pool is empty or a SoundFont kit is
    in it and FluidSynth is missing."""
    heldout = split != "train"
    pool = [k for k in catalogue(**kw) if k.heldout == heldout]
    if not pool:
        raise MixinError(f"no usable {'held-out' if heldout else 'training'} drum kit for the {split} "
                         f"split: install them with `apt-get install {' '.join(APT_PACKAGES)}`")
    if any(k.kind == "sf2" for k in pool):
        fluid.check_fluidsynth()
    return pool


#: Genres of the Groove MIDI Dataset that favour some kit presets (weight factors).
STYLE_PREFERENCES = {
    "jazz": {"Jazz": 4.0, "Brush": 4.0, "Power": 0.3, "electronic": 0.3},
    "neworleans": {"Jazz": 2.0, "Brush": 2.0, "electronic": 0.5},
    "rock": {"Power": 2.0, "Room": 1.5, "Brush": 0.3},
    "punk": {"Power": 2.5, "Brush": 0.2, "Jazz": 0.3},
    "hiphop": {"electronic": 2.5, "TR-808": 1.5},
    "dance": {"electronic": 2.5},
    "pop": {"electronic": 1.5},
    "funk": {"Brush": 0.5},
}


def choose_kit(pool: Sequence[KitSpec], rng: np.random.Generator, genre: str | None = None) -> KitSpec:
    """Draw a kit of ``pool`` by weight, adjusted for the groove's genre."""
    prefs = STYLE_PREFERENCES.get(genre or "", {})
    w = []
    for k in pool:
        f = k.weight
        for word, factor in prefs.items():
            if word == k.family or k.name.endswith(" " + word):
                f *= factor
        w.append(f)
    w = np.asarray(w) / np.sum(w)
    return pool[int(rng.choice(len(pool), p=w))]


def render_drums(spec: KitSpec, notes: np.ndarray, n_samples: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Render drum ``notes`` [shape=(n, 3)] with kit ``spec``: (float32 [shape=(2, n_samples)], info).
    Hydrogen kits: random instruments, pans and velocity curve; SoundFont kits: their own layers
    and pans, mirrored or not and narrowed at random. MixinError for an unreadable kit."""
    if spec.kind == "hydrogen":
        kit = hydrogen_kit(spec.path)
        gamma = float(rng.uniform(1.2, 1.9))
        y, info = play_hydrogen(kit, notes, n_samples, rng, velocity_gamma=gamma)
    else:
        y = play_soundfont(spec, notes, n_samples)
        # the SoundFont pans its pieces: a random view (drummer's or audience's) and width
        flip = bool(rng.random() < 0.5)
        width = float(rng.uniform(0.5, 1.0))
        mid, side = 0.5 * (y[0] + y[1]), 0.5 * (y[0] - y[1]) * np.float32(width * (-1 if flip else 1))
        y = np.stack([mid + side, mid - side]).astype(np.float32)
        info = {"hits": int(len(notes)), "flipped": flip, "width": round(width, 3)}
    info = {"kit": spec.name, **info}
    return y, info
