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

from . import fileio, params
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


def build_cdae(shape: tuple[int, int, int] | None = None, name: str | None = None) -> keras.Model:
    """Build an untrained MiXiN CDAE (Keras 3 functional model), uncompiled.

    Parameters
    ----------
    shape : tuple (rows, cols, 1), optional
        Input shape; defaults to :func:`input_shape`. The crop is derived so that the output
        shape equals the input shape for any size.
    name : str, optional
        The model's name (default "mixin_cdae").
    """
    import_tensorflow()
    import keras
    from keras import layers

    shape = tuple(shape or input_shape())
    rows, cols = shape[0], shape[1]
    # After pooling by (3,5) then (1,5) with 'same' padding and upsampling back, the size is
    # ceil(ceil(n/p1)/p2)*p2*p1; crop the excess (for 96 x 1948: 0 rows, 2 columns).
    up_rows = -(-rows // 3) * 3
    up_cols = -(-(-(-cols // 5)) // 5) * 25
    conv = dict(kernel_size=(3, 3), activation="relu", padding="same")
    inp = keras.Input(shape=shape)
    x = layers.Conv2D(12, **conv)(inp)
    x = layers.MaxPooling2D((3, 5), padding="same")(x)
    x = layers.Conv2D(20, **conv)(x)
    x = layers.MaxPooling2D((1, 5), padding="same")(x)
    x = layers.Conv2D(30, **conv)(x)
    x = layers.Conv2D(40, **conv)(x)
    x = layers.Conv2D(30, **conv)(x)
    x = layers.Conv2D(20, **conv)(x)
    x = layers.UpSampling2D((1, 5))(x)
    x = layers.Conv2D(12, **conv)(x)
    x = layers.UpSampling2D((3, 5))(x)
    x = layers.Conv2D(1, (1, 1), activation="relu", padding="same")(x)
    out = layers.Cropping2D(((0, up_rows - rows), (0, up_cols - cols)))(x)
    return keras.Model(inp, out, name=name or "mixin_cdae")


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


def load_cdae(path: str | os.PathLike,
              expected_shape: tuple[int, int, int] | None = None) -> keras.Model:
    """Load one CDAE from a Keras ``.h5`` (legacy Keras 2 files included) or ``.keras`` file.

    Raises :class:`MixinError` naming the file if it is missing, unreadable, or does not map
    ``expected_shape`` (default :func:`input_shape`) to the same shape.
    """
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
    want = tuple(expected_shape or input_shape())
    got_in = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    got_out = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else None
    if got_in != want or got_out != want:
        raise MixinError(f"model {path} maps {got_in} to {got_out}; MiXiN needs {want} to {want}")
    return model


def load_models(model_dir: str | os.PathLike,
                sources: Iterable[str] = params.SOURCES) -> dict[str, keras.Model]:
    """Load the CDAEs for ``sources`` from ``model_dir``; a dict keyed by source.

    Every file is checked before any is loaded, so a missing one is reported at once
    (:class:`MixinError`, as from :func:`load_cdae`).
    """
    if not os.path.isdir(str(model_dir)):
        raise MixinError(f"model directory not found: {model_dir}")
    paths = model_paths(model_dir, sources)
    for p in paths.values():
        if not os.path.isfile(p):
            raise MixinError(f"model file not found: {p}")
    return {s: load_cdae(p) for s, p in paths.items()}


def save_cdae(model: keras.Model, path: str | os.PathLike) -> None:
    """Save a CDAE in the HDF5 format that ``xtract_mixin.py --pretrained-model-dir`` loads
    (``path`` should end in ``.h5``).

    Written atomically (:func:`mixin.fileio.atomic_path`): an interrupted save never leaves a
    half-written model behind.
    """
    with fileio.atomic_path(path) as tmp, _quiet_legacy_notice():
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
