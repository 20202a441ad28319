"""A small FluidSynth wrapper: render a list of notes with a SoundFont, in-process, deterministically.

:func:`render_notes` plays ``(start_s, end_s, midi_pitch, velocity)`` rows with one GM program (or a
GM drum kit on MIDI channel 10) and returns FluidSynth's dry stereo output (its reverb and chorus
are off: :mod:`.fx` adds effects). One synthesizer per process and sample rate keeps the SoundFonts
it has loaded (MuseScore_General.sf3 takes 5-8 s to load) and is fully reset before each render, so
the same notes always give the same samples. Events apply on FluidSynth's 64-sample block boundaries
(at most 0.73 ms early or late); 100-1000x real time on one core. Needs the FluidSynth library and
the ``pyfluidsynth`` package (:func:`check_fluidsynth` says so in one line when either is missing).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from typing import Any

import numpy as np

from ...errors import MixinError

log = logging.getLogger("mixin")

#: FluidSynth renders (and applies events) in blocks of this many samples (FLUID_BUFSIZE).
BLOCK = 64

#: Voices of the synthesizer (a dense chord part peaks near 100-300 with FluidR3_GM's layered presets).
POLYPHONY = 512

#: Master gain of the synthesizer (pyfluidsynth's default): one loud note peaks around 0.1-0.5.
SYNTH_GAIN = 0.2

#: Debian packages that ship the SoundFonts MiXiN uses, by file name.
SOUNDFONT_PACKAGES = {"FluidR3_GM.sf2": "fluid-soundfont-gm", "MuseScore_General.sf3": "musescore-general-soundfont",
                      "TimGM6mb.sf2": "timgm6mb-soundfont"}

_INSTALL_HINT = "install it with `apt-get install fluidsynth` and `pip install pyfluidsynth`"

_lock = threading.Lock()
_synths: dict[int, "_Synth"] = {}


def _import_fluidsynth() -> Any:
    """The pyfluidsynth module, or MixinError (one line) when it or the library is missing."""
    try:
        import fluidsynth  # noqa: PLC0415 (optional dependency)
    except ImportError as e:
        raise MixinError(f"FluidSynth is not available ({e}): {_INSTALL_HINT}") from None
    except OSError as e:  # a broken or incompatible shared library
        raise MixinError(f"FluidSynth is not available ({str(e).splitlines()[0]}): {_INSTALL_HINT}") from None
    if getattr(fluidsynth, "fluid_synth_write_float", None) is None and not hasattr(fluidsynth, "_fl"):
        raise MixinError(f"FluidSynth is not available (pyfluidsynth without the library): {_INSTALL_HINT}")
    return fluidsynth


def check_fluidsynth() -> None:
    """Raise :class:`MixinError` (one line) unless FluidSynth and pyfluidsynth can be used."""
    _import_fluidsynth()


def check_soundfont(path: str) -> None:
    """Raise :class:`MixinError` (one line, naming the file and its Debian package) unless ``path`` is a
    readable SoundFont (``.sf2``/``.sf3``: a RIFF ``sfbk`` file)."""
    path = str(path)
    name = os.path.basename(path)
    package = SOUNDFONT_PACKAGES.get(name)
    hint = f": install the Debian package {package}" if package else ""
    if not os.path.isfile(path):
        raise MixinError(f"SoundFont not found: {path}{hint}")
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise MixinError(f"SoundFont not readable: {path} ({e.strerror}){hint}") from None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise MixinError(f"not a SoundFont (no RIFF sfbk header): {path}{hint}")


class _Synth:
    """One FluidSynth synthesizer (reverb and chorus off) with the SoundFonts it has loaded."""

    def __init__(self, sr: int):
        self.fl = fl = _import_fluidsynth()
        self.synth = fl.Synth(gain=SYNTH_GAIN, samplerate=float(sr), channels=16,
                              **{"synth.reverb.active": 0, "synth.chorus.active": 0,
                                 "synth.polyphony": POLYPHONY, "synth.cpu-cores": 1})
        self.sfids: dict[str, int] = {}
        self._write = getattr(fl, "fluid_synth_write_float", None)
        if self._write is None:  # older pyfluidsynth: bind the library's function
            i, p = ctypes.c_int, ctypes.c_void_p
            self._write = ctypes.CFUNCTYPE(i, p, i, p, i, i, p, i, i)(("fluid_synth_write_float", fl._fl))
        self._ptr = self.synth.synth
        self._scratch = np.zeros((2, BLOCK), dtype=np.float32)
        self.scrubbed = 0

    def sfid(self, path: str) -> int:
        """Load ``path`` once (cached) and return its FluidSynth id."""
        key = os.path.realpath(path)
        if key not in self.sfids:
            check_soundfont(path)
            sid = self.synth.sfload(key)
            if sid is None or sid < 0:
                raise MixinError(f"FluidSynth could not load the SoundFont {path}")
            self.sfids[key] = sid
            log.debug("loaded SoundFont %s (id %d)", path, sid)
        return self.sfids[key]

    def reset(self) -> None:
        """Silence everything, reset every channel (programs, controllers, pitch bend) and let the
        mixer take the voices back (one block of output is computed and discarded)."""
        self.synth.system_reset()
        for chan in range(16):
            self.synth.all_sounds_off(chan)
        self.write(self._scratch, 0, BLOCK)

    def scrub(self, sid: int, bank: int, program: int) -> None:
        """Put every voice into the same state, whatever was rendered before.

        FluidSynth keeps a little state in a voice between notes (the output gain of its last block,
        from which a new note's first block ramps), so a reused synthesizer would not repeat itself
        bit for bit. Here all voices but a small margin are started (from a reset synthesizer, so the
        same voices get the same notes) with one preset of the SoundFont being rendered, mixed for one
        block and reset: every voice then carries a state that depends only on that preset."""
        fl, p = self.fl, self._ptr
        self.reset()
        for chan in range(16):
            if fl.fluid_synth_program_select(p, chan, sid, 0, 0) != 0:
                fl.fluid_synth_program_select(p, chan, sid, bank, program)
        target = POLYPHONY - 16
        for k in range(16 * 128):
            if fl.fluid_synth_get_active_voice_count(p) >= target:
                break
            fl.fluid_synth_noteon(p, (k // 128) % 16, k % 128, 127)
        self.scrubbed = fl.fluid_synth_get_active_voice_count(p)
        self.write(self._scratch, 0, BLOCK)
        self.reset()

    def write(self, out: np.ndarray, start: int, stop: int) -> None:
        """Render samples ``start:stop`` of ``out`` [shape=(2, n), float32, C-contiguous] in place."""
        n = stop - start
        if n <= 0:
            return
        left = out[0].ctypes.data + 4 * start
        right = out[1].ctypes.data + 4 * start
        self._write(self._ptr, n, ctypes.c_void_p(left), 0, 1, ctypes.c_void_p(right), 0, 1)


def _events(notes: np.ndarray, sr: int, drums: bool) -> list[tuple[int, int, int, int]]:
    """Sorted events ``(block_sample, kind, key, velocity)``, kind 0 = note-off, 1 = note-on.

    Times go to the nearest block boundary. A note re-struck before its previous note's end has that
    previous note ended at the new onset (otherwise the late note-off would cut the new note).
    Percussion notes with ``end_s <= start_s`` get no note-off (one-shot, as drum machines send)."""
    start = np.rint(notes[:, 0] * sr / BLOCK).astype(np.int64) * BLOCK
    end = np.rint(notes[:, 1] * sr / BLOCK).astype(np.int64) * BLOCK
    key = np.rint(notes[:, 2]).astype(np.int64)
    vel = np.clip(np.rint(notes[:, 3]), 1, 127).astype(np.int64)
    one_shot = (notes[:, 1] <= notes[:, 0]) if drums else np.zeros(len(notes), bool)
    end = np.maximum(end, start + (0 if drums else BLOCK))
    order = np.lexsort((start, key))
    k, s = key[order], start[order]
    same = k[1:] == k[:-1]
    idx = order[:-1][same]
    end[idx] = np.minimum(end[idx], s[1:][same])
    ev = [(int(a), 1, int(b), int(c)) for a, b, c in zip(start, key, vel)]
    ev += [(int(e), 0, int(b), 0) for e, b, o in zip(end, key, one_shot) if not o]
    ev.sort()
    return ev


def render_notes(soundfont: str, notes: Any, n_samples: int, program: int = 0, bank: int = 0,
                 drums: bool = False, sr: int = 44100) -> np.ndarray:
    """Render ``notes`` with one SoundFont program: FluidSynth's dry stereo output, float32
    [shape=(2, n_samples)] (full scale = 1; not clipped; release tails cut at the end).

    ``notes``: rows ``(start_s, end_s, midi_pitch, velocity)`` [shape=(n_notes, 4)], velocity 1..127
    (velocity 0 and pitches outside 0..127 are skipped); notes starting at or after the end are
    ignored, notes starting before 0 start at 0; with ``drums``, ``end_s <= start_s`` is a one-shot
    hit. ``program``: GM program 0-127 (with ``drums``: the kit, played from bank 128 on the
    percussion channel, ``bank`` ignored). Raises :class:`MixinError` for a missing FluidSynth or
    SoundFont or a bad argument.
    """
    n_samples = int(n_samples)
    if n_samples < 0:
        raise MixinError(f"render_notes: n_samples must be >= 0, got {n_samples}")
    if not 0 <= int(program) <= 127:
        raise MixinError(f"render_notes: program must be in 0..127, got {program}")
    arr = np.asarray(notes, dtype=np.float64)
    if arr.size == 0:
        arr = np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise MixinError(f"render_notes: notes must be rows (start_s, end_s, pitch, velocity), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise MixinError("render_notes: notes contain NaN or infinite values")
    keep = (arr[:, 2] >= 0) & (arr[:, 2] <= 127) & (arr[:, 0] * sr < n_samples) & (arr[:, 3] >= 0.5)
    keep &= (arr[:, 1] > 0) | ((arr[:, 0] >= 0) & drums)
    arr = arr[keep]
    arr[:, 0] = np.maximum(arr[:, 0], 0.0)  # a note that started before the window starts at 0
    check_soundfont(soundfont)
    n_blocks = -(-n_samples // BLOCK)
    out = np.zeros((2, n_blocks * BLOCK), dtype=np.float32)
    chan = 9 if drums else 0
    with _lock:
        syn = _synths.get(int(sr)) or _synths.setdefault(int(sr), _Synth(int(sr)))
        sid = syn.sfid(soundfont)
        bank = 128 if drums else int(bank)
        syn.scrub(sid, bank, int(program))
        if syn.synth.program_select(chan, sid, bank, int(program)) != 0:
            raise MixinError(f"render_notes: {os.path.basename(soundfont)} has no preset bank {bank} "
                             f"program {program}")
        pos, peak = 0, 0
        fl, ptr = syn.fl, syn._ptr
        for t, kind, key, vel in _events(arr, sr, drums) if len(arr) else []:
            if t >= out.shape[1]:
                break
            syn.write(out, pos, t)
            pos = max(pos, t)
            if kind:
                fl.fluid_synth_noteon(ptr, chan, key, vel)
                peak = max(peak, fl.fluid_synth_get_active_voice_count(ptr))
            else:
                fl.fluid_synth_noteoff(ptr, chan, key)
        syn.write(out, pos, out.shape[1])
        if peak > syn.scrubbed:
            log.debug("render_notes: %d voices at once (more than the %d reset ones): output may depend on"
                      " earlier renders", peak, syn.scrubbed)
    out = np.ascontiguousarray(out[:, :n_samples])
    if not np.isfinite(out).all():
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out
