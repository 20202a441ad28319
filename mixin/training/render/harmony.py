"""The song generators' music tables: modes, note names, chord progressions (scale degrees) and the
notes of scale degrees — shared by :mod:`.backing` (rendered songs) and :mod:`.synth` (synthetic ones).
"""

from __future__ import annotations

import numpy as np

#: Scale steps (semitones above the tonic) of each mode.
MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
#: How often a rendered song is in each mode.
MODE_WEIGHTS = {"major": 0.4, "minor": 0.35, "dorian": 0.12, "mixolydian": 0.13}

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

#: Common progressions (scale degrees, 0 = tonic) per mode: the rendered songs' loops.
PROGRESSIONS = {
    "major": [(0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 0), (0, 3, 0, 4),
              (0, 2, 3, 4), (3, 4, 0, 5), (0, 4, 5, 2, 3, 0, 3, 4), (0, 3, 5, 4)],
    "minor": [(0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4), (0, 0, 5, 6),
              (0, 2, 6, 3), (5, 6, 0, 0), (0, 6, 5, 4, 0, 6, 5, 4)],
    "dorian": [(0, 3, 0, 3), (0, 3, 6, 3), (0, 1, 3, 0), (0, 6, 3, 0)],
    "mixolydian": [(0, 6, 3, 0), (0, 6, 0, 3), (0, 3, 6, 3), (0, 4, 6, 3)],
}

#: The synthetic songs' four-bar loops, played in major or minor alike (four are major ones above).
FOUR_BAR_LOOPS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 3, 5, 4), (0, 5, 2, 3))


def degree_notes(mode: str, degrees: int | np.ndarray) -> np.ndarray:
    """Semitones above the tonic of scale ``degrees`` (any shape; degree 7 is the octave, and so on)."""
    d = np.asarray(degrees)
    return np.asarray(MODES[mode])[d % 7] + 12 * (d // 7)
