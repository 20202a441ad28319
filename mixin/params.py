"""Constants of the MiXiN algorithm: one place for every number the published models depend on.

The network input size (96 x 1948) is not a constant here: it is derived from the transform
(:func:`mixin.nsgt.coef_shape`), which depends only on the values below.
"""

#: Sample rate the models work at (Hz). Input at any other rate is resampled to it and back.
SAMPLE_RATE = 44100

#: Samples per transform chunk (about one second). One NSGT matrix is computed per chunk.
CHUNK_SIZE = 44032

#: Bark-scale NSGT: number of bands, spaced evenly in Bark (6 * asinh(f / 600)) from F_MIN to F_MAX.
N_BANDS = 96
F_MIN = 0.0
F_MAX = 22050.0

#: Smallest window length (bins) of the non-sliced NSGT, as in the reference implementation.
MIN_WIN = 4

#: Guard in the soft-mask denominator, as in the published MiXiN (keeps masks finite on silence).
MASK_EPS = 1e-7

#: The three sources, in the order the separator returns them.
SOURCES = ("harmonic", "percussive", "vocal")

#: File names of the three networks inside a model directory.
MODEL_FILES = {s: f"model_{s}.h5" for s in SOURCES}

#: Default overlap fraction between consecutive chunks at separation time (0 = the original's
#: hard chunk boundaries). Chosen by measurement: see README, "Overlap".
DEFAULT_OVERLAP = 0.25

#: A 1 s window of a source is active when its RMS exceeds this (-60 dBFS): for choosing excerpts,
#: scoring windows and the training catalogue's activity.
ACTIVE_RMS = 1e-3
