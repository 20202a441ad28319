"""The convolutional denoising autoencoder (CDAE) of MiXiN, and loading/saving it.

One CDAE per source maps the mixture's NSGT magnitude [shape=(batch, 96, 1948, 1)] to an estimate
of that source's magnitude of the same shape (Grais & Plumbley 2017, as published with MiXiN):

    Conv2D 12 (3x3, ReLU, same) -> MaxPool (3,5) same -> Conv2D 20 -> MaxPool (1,5) same
    -> Conv2D 30 -> Conv2D 40 -> Conv2D 30 -> Conv2D 20 -> UpSampling (1,5) -> Conv2D 12
    -> UpSampling (3,5) -> Conv2D 1 (1x1, ReLU) -> Cropping2D ((0,0),(0,2))

13 layers, 37,005 parameters. The pooling/upsampling factors round 1948 columns up to 1950, which
the final crop removes, so the output shape equals the input shape.

TensorFlow is imported only inside these functions: ``import mixin`` and ``--help`` stay instant.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from . import params
from .io import atomic_path, write_json
from .errors import MixinError

if TYPE_CHECKING:
    import keras

log = logging.getLogger("mixin")

#: Layers of the published architecture (excluding the input layer) and its parameter count.
N_LAYERS = 13
N_PARAMS = 37005


def import_tensorflow(verbose: bool = False) -> ModuleType:
    """Import TensorFlow quietly (its C++ log level follows ``verbose``, unless
    ``TF_CPP_MIN_LOG_LEVEL`` is set) and return the ``tensorflow`` module."""
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    quiet = os.environ["TF_CPP_MIN_LOG_LEVEL"] not in ("0", "1")
    if "tensorflow" not in sys.modules and quiet:
        # TensorFlow's C++ start-up messages (absl, oneDNN) are printed during the import,
        # before its log level applies: silence file descriptor 2 for the import only.
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            import tensorflow as tf  # noqa: PLC0415  (heavy import on purpose, only when needed)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    else:
        import tensorflow as tf  # noqa: PLC0415

    tf.get_logger().setLevel(logging.INFO if verbose else logging.ERROR)
    return tf


def input_shape() -> tuple[int, int, int]:
    """The networks' input shape, derived from the transform: (n_bands, n_cols, 1) = (96, 1948, 1)."""
    from .nsgt import coef_shape

    return coef_shape() + (1,)


def _cdae_layers(widths, dilations, rows: int, cols: int) -> list:
    """The CDAE's layers after its input for (rows, cols) inputs: seven 3x3 convolutions of
    ``widths`` filters (``dilations``: dilated 1x3 convolutions after the third), pooling by (3,5)
    and (1,5), upsampling back, a 1x1 convolution to one channel and the crop of the excess (after
    'same' pooling and upsampling the size is ceil(ceil(n/p1)/p2)*p2*p1: 0 rows and 2 columns for 96 x 1948)."""
    from keras import layers

    w = widths
    up_rows = -(-rows // 3) * 3
    up_cols = -(-(-(-cols // 5)) // 5) * 25
    conv = dict(kernel_size=(3, 3), activation="relu", padding="same")
    stack = [layers.Conv2D(w[0], **conv), layers.MaxPooling2D((3, 5), padding="same"),
             layers.Conv2D(w[1], **conv), layers.MaxPooling2D((1, 5), padding="same"),
             layers.Conv2D(w[2], **conv)]
    stack += [layers.Conv2D(w[2], (1, 3), dilation_rate=(1, d), activation="relu", padding="same")
              for d in dilations]
    return stack + [layers.Conv2D(w[3], **conv), layers.Conv2D(w[4], **conv), layers.Conv2D(w[5], **conv),
                    layers.UpSampling2D((1, 5)), layers.Conv2D(w[6], **conv), layers.UpSampling2D((3, 5)),
                    layers.Conv2D(1, (1, 1), activation="relu", padding="same"),
                    layers.Cropping2D(((0, up_rows - rows), (0, up_cols - cols)))]


def build_cdae(shape: tuple[int, int, int] | None = None, name: str | None = None) -> keras.Model:
    """Build an untrained MiXiN CDAE (Keras 3 functional model, name "mixin_cdae" by default),
    uncompiled, for inputs of ``shape`` (rows, cols, 1) (default :func:`input_shape`); its output
    shape equals its input shape for any size."""
    import_tensorflow()
    import keras

    shape = tuple(shape or input_shape())
    x = inp = keras.Input(shape=shape)
    for layer in _cdae_layers(ARCHITECTURES[DEFAULT_ARCH]["widths"], (), shape[0], shape[1]):
        x = layer(x)
    return keras.Model(inp, x, name=name or "mixin_cdae")


#: Architectures ``--arch`` builds: the published CDAE ("mixin", the default) and the opt-in family
#: built to generalise. Every one maps [shape=(b, 96, 1948, len(inputs))] to one magnitude estimate
#: [shape=(b, 96, 1948, 1)] chunk by chunk, as a plain stack of layers (so it exports to ONNX).
#: ``inputs``: "mag" (the mixture's NSGT magnitude), "hpss_harmonic" and "hpss_percussive" (its
#: median-filter estimates, :func:`mixin.hpss.hpss`), "onset" (:func:`mixin.hpss.onset`: how
#: percussive the bands above 1 kHz are, per column, in every band); ``widths``: the seven convolutions' filters;
#: ``dilations``: dilated (1 x 3) time convolutions at the bottleneck, where a column is 25 of the
#: input's (dilations 2, 4, 8, 16 widen the time context from ~0.13 s to ~1 s, the whole chunk).
ARCHITECTURES = {
    "mixin": {"inputs": ("mag",), "widths": (12, 20, 30, 40, 30, 20, 12), "dilations": (),
              "about": "the published MiXiN CDAE (13 layers, 37,005 parameters)"},
    "mixin-hpss": {"inputs": ("mag", "hpss_harmonic", "hpss_percussive"),
                   "widths": (12, 20, 30, 40, 30, 20, 12), "dilations": (),
                   "about": "the published CDAE fed the mixture and its median-filtering HPSS estimates"},
    "mixin-context": {"inputs": ("mag",), "widths": (12, 20, 30, 40, 30, 20, 12),
                      "dilations": (2, 4, 8, 16),
                      "about": "the published CDAE with dilated time convolutions: ~1 s of context"},
    "mixin-wide": {"inputs": ("mag",), "widths": (24, 40, 60, 80, 60, 40, 24), "dilations": (),
                   "about": "the published CDAE with twice the filters"},
    "mixin-onset": {"inputs": ("mag", "hpss_harmonic", "hpss_percussive", "onset"),
                    "widths": (12, 20, 30, 40, 30, 20, 12), "dilations": (),
                    "about": "mixin-hpss plus how percussive the bands above 1 kHz are at each "
                             "instant, given to every band (kick vs sub bass)"},
    "mixin-plus": {"inputs": ("mag", "hpss_harmonic", "hpss_percussive"),
                   "widths": (24, 40, 60, 80, 60, 40, 24), "dilations": (2, 4, 8, 16),
                   "about": "HPSS inputs, ~1 s of context and twice the filters together"},
}

#: The published architecture's name.
DEFAULT_ARCH = "mixin"


def check_arch(arch: str) -> dict:
    """The :data:`ARCHITECTURES` entry of ``arch``; :class:`MixinError` naming it if unknown."""
    if arch not in ARCHITECTURES:
        raise MixinError(f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch]


def build_model(arch: str = DEFAULT_ARCH, shape: tuple[int, int] | None = None,
                name: str | None = None) -> keras.Model:
    """Build an untrained network of architecture ``arch`` (:data:`ARCHITECTURES`), uncompiled.

    ``shape`` is (rows, cols) (default: the transform's, 96 x 1948); the input has one channel
    per entry of the architecture's ``inputs``. ``"mixin"`` is exactly :func:`build_cdae`."""
    spec = check_arch(arch)
    rows, cols = tuple(shape or input_shape()[:2])
    if arch == DEFAULT_ARCH:
        return build_cdae((rows, cols, 1), name=name)
    import_tensorflow()
    import keras

    stack = [keras.Input(shape=(rows, cols, len(spec["inputs"])))]
    return keras.Sequential(stack + _cdae_layers(spec["widths"], spec["dilations"], rows, cols),
                            name=name or arch.replace("-", "_"))


def model_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of one example through ``model``'s convolutions (the bulk of its work)."""
    total = 0
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D":
            kh, kw = layer.kernel_size
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            total += 2 * kh * kw * c_in * c_out * h * w
    return int(total)


#: The record of a model set's architecture and inputs, beside its weights (absent: the published
#: model, as the original's weights and every model folder made before it).
MODEL_JSON = "model.json"
MODEL_FORMAT = "mixin-model/1"


def model_spec(arch: str = DEFAULT_ARCH) -> dict:
    """The ``model.json`` content of a model set of architecture ``arch``."""
    from . import __version__

    spec = check_arch(arch)
    out = {"format": MODEL_FORMAT, "architecture": arch, "inputs": list(spec["inputs"]),
           "transform": {"sample_rate": params.SAMPLE_RATE, "chunk_size": params.CHUNK_SIZE,
                         "n_bands": params.N_BANDS, "f_min": params.F_MIN, "f_max": params.F_MAX,
                         "min_win": params.MIN_WIN, "scale": "bark"},  # what the networks' inputs are
           "version": __version__}
    if any(i.startswith("hpss_") or i == "onset" for i in spec["inputs"]):
        out["hpss"] = hpss_settings()
    if "onset" in spec["inputs"]:
        out["onset"] = onset_settings()
    return out


def onset_settings() -> dict:
    """The settings of :func:`mixin.hpss.onset` a ``model.json`` records when its networks take it."""
    from . import hpss

    return {"min_hz": hpss.ONSET_MIN_HZ}


def hpss_settings() -> dict:
    """The settings of :func:`mixin.hpss.hpss` a ``model.json`` records when its networks take HPSS
    inputs or its masks are anchored to HPSS (``hpss_anchor``)."""
    from . import hpss

    return {"time_pool": hpss.TIME_POOL, "time_median": hpss.TIME_MEDIAN,
            "band_pool": hpss.BAND_POOL, "band_median": hpss.BAND_MEDIAN}


def write_model_spec(model_dir: str | os.PathLike, arch: str = DEFAULT_ARCH) -> None:
    """Write ``model_dir/model.json`` for ``arch`` (atomically)."""
    write_json(os.path.join(str(model_dir), MODEL_JSON), model_spec(arch), indent=1)


def read_model_spec(model_dir: str | os.PathLike) -> dict:
    """The ``model.json`` of ``model_dir``, checked; the published model's spec when there is none.

    Raises :class:`MixinError` (one line naming the file) for unreadable JSON, another format, an
    unknown architecture, inputs that are not the architecture's, or a transform other than MiXiN's."""
    import json

    path = os.path.join(str(model_dir), MODEL_JSON)
    if not os.path.exists(path):
        return {**model_spec(DEFAULT_ARCH), "hpss_anchor": 0.0}
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError) as e:
        raise MixinError(f"cannot read {path}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(rec, dict) or rec.get("format") != MODEL_FORMAT:
        raise MixinError(f"{path} is not a MiXiN model record (format {MODEL_FORMAT!r} expected)")
    arch = rec.get("architecture")
    if arch not in ARCHITECTURES:
        raise MixinError(f"{path}: unknown architecture {arch!r} (this MiXiN knows "
                         f"{', '.join(ARCHITECTURES)}; a newer MiXiN may be needed)")
    want = model_spec(arch)
    if list(rec.get("inputs", [])) != want["inputs"]:
        raise MixinError(f"{path}: inputs {rec.get('inputs')} are not those of {arch} ({want['inputs']})")
    if rec.get("transform") != want["transform"]:
        raise MixinError(f"{path}: the models were trained on another transform "
                         f"({rec.get('transform')}); MiXiN computes {want['transform']}")
    ours = hpss_settings()
    if "hpss" in rec and rec["hpss"] != ours:
        raise MixinError(f"{path}: HPSS settings {rec['hpss']} differ from MiXiN's {ours}")
    if "onset" in want and rec.get("onset", want["onset"]) != want["onset"]:
        raise MixinError(f"{path}: onset settings {rec.get('onset')} differ from MiXiN's {want['onset']}")
    from .masks import check_anchor

    anchor = check_anchor(rec.get("hpss_anchor", 0.0), f"{path}: hpss_anchor")
    if anchor and "hpss" not in rec:
        raise MixinError(f"{path}: hpss_anchor {anchor} needs the HPSS settings (\"hpss\": {ours})")
    return {**want, **{k: v for k, v in rec.items() if k not in want}, "hpss_anchor": anchor}


def network_input(mag: np.ndarray, inputs: Iterable[str] = ("mag",),
                  hpss_est: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The networks' input for chunk magnitudes ``mag`` [shape=(b, 96, 1948)]: the channels named
    by ``inputs`` (a model spec's), float32 [shape=(b, 96, 1948, len(inputs))]. ``hpss_est``:
    :func:`mixin.hpss.hpss` of ``mag`` when already computed."""
    inputs = tuple(inputs)
    mag = np.asarray(mag, dtype=np.float32)
    if inputs == ("mag",):
        return mag[..., None]
    from .hpss import hpss

    chans = {"mag": mag}
    if any(i.startswith("hpss_") or i == "onset" for i in inputs):
        chans["hpss_harmonic"], chans["hpss_percussive"] = hpss_est if hpss_est else hpss(mag)
    if "onset" in inputs:
        from .hpss import onset

        chans["onset"] = onset(mag, chans["hpss_percussive"])
    unknown = [i for i in inputs if i not in chans]
    if unknown:
        raise MixinError(f"unknown network input {unknown[0]!r}")
    return np.stack([chans[i] for i in inputs], axis=-1)


def compile_cdae(model: keras.Model, loss: str = "mae", learning_rate: float = 1e-3) -> keras.Model:
    """Compile ``model`` in place with Adam and ``loss`` (a Keras loss name; the published
    models: "mae"), reporting MAE; returns it. The arguments are not checked here."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss,
                  metrics=["mae"])
    return model


def model_paths(model_dir: str | os.PathLike,
                sources: Iterable[str] = params.SOURCES) -> dict[str, str]:
    """Paths (str) of the model files for ``sources`` inside ``model_dir`` (a dict keyed by
    source; names in :data:`mixin.params.MODEL_FILES`)."""
    return {s: os.path.join(str(model_dir), params.MODEL_FILES[s]) for s in sources}


def load_cdae(path: str | os.PathLike, channels: int | None = 1) -> keras.Model:
    """Load one CDAE from a Keras ``.h5`` (legacy Keras 2 files included) or ``.keras`` file.
    :class:`MixinError` naming the file if it is missing, unreadable, or does not map
    :func:`input_shape` with ``channels`` input channels (None: any number) to :func:`input_shape`."""
    path = str(path)
    if not os.path.exists(path):
        raise MixinError(f"model file not found: {path}")
    if not os.path.isfile(path):
        raise MixinError(f"model path is not a file: {path}")
    import_tensorflow()
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # h5py/keras raise many types for corrupt files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MixinError(f"cannot load model {path}: {msg[:200]}") from None
    want = input_shape()
    got_in = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    got_out = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else None
    if channels is None:  # any number of input channels
        channels = got_in[2] if got_in is not None and len(got_in) == 3 else 1
    want_in = want[:2] + (int(channels),)
    if got_in != want_in or got_out != want:
        raise MixinError(f"model {path} maps {got_in} to {got_out}; MiXiN needs {want_in} to {want}")
    return model


def load_models(model_dir: str | os.PathLike,
                sources: Iterable[str] = params.SOURCES) -> dict[str, keras.Model]:
    """Load the CDAEs for ``sources`` from ``model_dir``: {source: model}. Every file is checked
    before any is loaded (a missing one is reported at once, :class:`MixinError`)."""
    if not os.path.isdir(str(model_dir)):
        raise MixinError(f"model directory not found: {model_dir}")
    paths = model_paths(model_dir, sources)
    for p in paths.values():
        if not os.path.isfile(p):
            raise MixinError(f"model file not found: {p}")
    channels = len(read_model_spec(model_dir)["inputs"])
    return {s: load_cdae(p, channels=channels) for s, p in paths.items()}


def save_cdae(model: keras.Model, path: str | os.PathLike) -> None:
    """Save a CDAE atomically in the HDF5 format that ``xtract_mixin.py --pretrained-model-dir``
    loads (``path`` should end in ``.h5``): an interrupted save leaves no half-written model."""
    with atomic_path(path) as tmp, _quiet_legacy_notice():
        model.save(str(tmp))


@contextlib.contextmanager
def _quiet_legacy_notice():
    """Hide Keras' "HDF5 is legacy" warning (sent through absl's logger on every ``.h5`` save; the
    format is the published one, chosen on purpose) unless the ``mixin`` logger is at DEBUG."""
    absl = logging.getLogger("absl")
    level = absl.level
    if not log.isEnabledFor(logging.DEBUG):
        absl.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl.setLevel(level)
