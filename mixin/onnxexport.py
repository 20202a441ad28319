"""Exporting the Keras networks to ONNX (for the ``onnx`` backend of :mod:`mixin.backends`).

A converter written with the ``onnx`` package for the layers the model builders use (:data:`SUPPORTED`:
``Conv2D`` with any kernel, strides, dilation, 'same' or 'valid' padding and ReLU or linear
activation, ``MaxPooling2D``, nearest ``UpSampling2D``, ``Cropping2D``, plain ``ReLU``); any other
layer or setting is refused with a :class:`MixinError` naming it. The graph keeps the Keras NHWC
signature (``magnitude`` -> ``estimate``, [shape=(b, rows, cols, channels)]) and works in NCHW
inside. 'same' padding is made explicit as TensorFlow computes it; pointwise layers after a
nearest upsampling run before it, on the smaller input (the same numbers, fewer operations).
Each file records the name and sha256 of its ``.h5`` (:data:`mixin.backends.SHA256_KEY`; the
separator refuses an ``.onnx`` whose ``.h5`` has another hash). The same ``.h5`` gives the same bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from . import __version__, params
from .io import atomic_path
from .backends import SHA256_KEY, SOURCE_KEY, TRAIN_EXTRA, installed, onnx_file, sha256
from .errors import MixinError

if TYPE_CHECKING:
    import keras
    import onnx

log = logging.getLogger("mixin")

#: ONNX opset of the exported graphs (ONNX Runtime 1.17+ runs it).
OPSET = 17

#: Keras layer types the exporter converts.
SUPPORTED = ("InputLayer", "Conv2D", "MaxPooling2D", "UpSampling2D", "Cropping2D", "ReLU",
             "Activation")


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: (before, after), the odd cell after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


class _Graph:
    """The ONNX graph being built from ``model``: nodes, initializers, fresh names, and the nearest
    upsampling not emitted yet (pointwise layers run before it)."""

    def __init__(self, model):
        self.model, self.nodes, self.inits, self.count, self.up = model, [], [], 0, [1, 1]

    def fresh(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base, arr):
        from onnx import numpy_helper

        n = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(self, op, inputs, **attrs):
        from onnx import helper

        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def refuse(self, layer, what):
        raise MixinError(f"cannot export layer {layer.name!r} ({type(layer).__name__}) of "
                         f"{self.model.name} to ONNX: {what}")

    def activation(self, layer, x, act):
        act_name = getattr(act, "__name__", str(act))
        if act_name == "relu":
            return self.node("Relu", [x])
        if act_name == "linear":
            return x
        self.refuse(layer, f"activation {act_name!r} (relu and linear are supported)")

    def flush(self, x):
        if self.up == [1, 1]:
            return x
        x = self.node("Resize", [x, "", self.const("scales", np.array([1, 1] + self.up, np.float32))],
                      mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        self.up = [1, 1]
        return x

    def pads(self, layer, cfg, h, w, kernel, strides, dilation=(1, 1)):
        """((top, bottom), (left, right)) of a 'same' or 'valid' layer on an h x w input."""
        if cfg["padding"] == "same":
            return (_same_pads(h, kernel[0], strides[0], dilation[0]),
                    _same_pads(w, kernel[1], strides[1], dilation[1]))
        if cfg["padding"] != "valid":
            self.refuse(layer, f"padding {cfg['padding']!r}")
        return (0, 0), (0, 0)

    def convert(self, layer, x, h, w, c):
        """Add ``layer`` to the graph: its output name and size (h, w, c)."""
        kind, cfg = type(layer).__name__, layer.get_config()
        if kind == "Conv2D":
            (kh, kw), (sh, sw), (dh, dw) = (_pair(cfg[k]) for k in ("kernel_size", "strides", "dilation_rate"))
            weights = layer.get_weights()
            kernel = weights[0].astype(np.float32)  # (kh, kw, c / groups, filters)
            ph, pw = self.pads(layer, cfg, h, w, (kh, kw), (sh, sw), (dh, dw))
            if (kh, kw, sh, sw) != (1, 1, 1, 1):
                x = self.flush(x)
            ins = [x, self.const("W", kernel.transpose(3, 2, 0, 1).copy())]
            if cfg.get("use_bias", True):
                ins.append(self.const("B", weights[1].astype(np.float32)))
            x = self.node("Conv", ins, kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
                          pads=[ph[0], pw[0], ph[1], pw[1]], group=int(cfg.get("groups", 1)))
            x = self.activation(layer, x, layer.activation)
            return (x, (h + sum(ph) - (kh - 1) * dh - 1) // sh + 1,
                    (w + sum(pw) - (kw - 1) * dw - 1) // sw + 1, kernel.shape[3])
        if kind == "MaxPooling2D":
            kh, kw = _pair(cfg["pool_size"])
            sh, sw = _pair(cfg["strides"] if cfg.get("strides") is not None else cfg["pool_size"])
            ph, pw = self.pads(layer, cfg, h, w, (kh, kw), (sh, sw))
            x = self.node("MaxPool", [self.flush(x)], kernel_shape=[kh, kw], strides=[sh, sw],
                          pads=[ph[0], pw[0], ph[1], pw[1]])
            return x, (h + sum(ph) - kh) // sh + 1, (w + sum(pw) - kw) // sw + 1, c
        if kind == "UpSampling2D":
            if cfg.get("interpolation", "nearest") != "nearest":
                self.refuse(layer, f"interpolation {cfg['interpolation']!r} (nearest is supported)")
            fh, fw = _pair(cfg["size"])
            self.up = [self.up[0] * fh, self.up[1] * fw]
            return x, h * fh, w * fw, c
        if kind == "Cropping2D":
            (t, b), (lft, r) = (_pair(v) for v in cfg["cropping"])
            x = self.node("Slice", [self.flush(x), self.const("starts", np.array([t, lft], np.int64)),
                                    self.const("ends", np.array([h - b, w - r], np.int64)),
                                    self.const("axes", np.array([2, 3], np.int64))])
            return x, h - t - b, w - lft - r, c
        if kind == "ReLU":
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                self.refuse(layer, "only a plain ReLU (no max_value, negative_slope or threshold) is supported")
            return self.node("Relu", [x]), h, w, c
        return self.activation(layer, x, layer.activation), h, w, c  # Activation


def keras_to_onnx(model: keras.Model, name: str = "mixin_cdae",
                  metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """Convert a single-input, single-output Keras model made of :data:`SUPPORTED` layers.

    The graph maps ``magnitude`` float32 [shape=(b, rows, cols, channels)] (b dynamic) to
    ``estimate`` [shape=(b, rows', cols', channels')], as the Keras model. ``metadata`` goes to the
    model's ``metadata_props``. Raises :class:`MixinError` naming an unsupported layer or setting."""
    import onnx
    from onnx import TensorProto, helper

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise MixinError(f"cannot export {model.name}: it has {len(model.inputs)} inputs and "
                         f"{len(model.outputs)} outputs (one of each is supported)")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise MixinError(f"cannot export {model.name}: input shape {shape} is not a fixed "
                         "(rows, cols, channels)")
    g = _Graph(model)
    x = g.node("Transpose", ["magnitude"], perm=[0, 3, 1, 2])  # NHWC -> NCHW
    h, w, c = (int(d) for d in shape)  # the Keras layer's size (upsampling included)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED:
            raise MixinError(f"cannot export layer {layer.name!r} of {model.name} to ONNX: type "
                             f"{kind} is not supported (supported: {', '.join(SUPPORTED)})")
        fmt = layer.get_config().get("data_format", "channels_last")
        if fmt != "channels_last":
            g.refuse(layer, f"data_format {fmt!r} (channels_last is supported)")
        if kind != "InputLayer":
            x, h, w, c = g.convert(layer, x, h, w, c)
    out_shape = tuple(int(d) for d in model.outputs[0].shape[1:])
    if out_shape != (h, w, c):
        raise MixinError(f"cannot export {model.name}: the converted graph gives {(h, w, c)}, "
                         f"Keras {out_shape}")
    g.nodes.append(helper.make_node("Transpose", [g.flush(x)], ["estimate"], name="to_nhwc",
                                    perm=[0, 2, 3, 1]))
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("magnitude", TensorProto.FLOAT, ["batch"] + list(shape))],
        [helper.make_tensor_value_info("estimate", TensorProto.FLOAT, ["batch", h, w, c])],
        initializer=g.inits)
    m = helper.make_model(graph, producer_name="mixin.onnxexport", producer_version=__version__,
                          opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8  # ONNX Runtime 1.14+ reads it
    helper.set_model_props(m, dict(metadata or {}))
    onnx.checker.check_model(m, full_check=True)
    return m


def recorded_hash(path: str | os.PathLike) -> str | None:
    """The ``.h5`` sha256 recorded in an ``.onnx`` file (None if none or unreadable)."""
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  (a corrupt file records nothing)
        return None
    return {p.key: p.value for p in m.metadata_props}.get(SHA256_KEY)


def export_onnx(h5_path: str | os.PathLike, onnx_path: str | os.PathLike | None = None,
                overwrite: bool = False) -> tuple[str, bool]:
    """Export one ``.h5`` CDAE to ``onnx_path`` (default: the ``.onnx`` beside it), atomically:
    (path, written). Without ``overwrite`` an ``.onnx`` exported from this very ``.h5`` is left as it
    is and another is refused (:class:`MixinError`, as for an unreadable or unsupported model)."""
    import onnx

    h5_path = str(h5_path)
    onnx_path = str(onnx_path) if onnx_path is not None else onnx_file(h5_path)
    if not os.path.isfile(h5_path):
        raise MixinError(f"model file not found: {h5_path}")
    digest = sha256(h5_path)
    if os.path.exists(onnx_path) and not overwrite:
        if recorded_hash(onnx_path) == digest:
            log.debug("%s is up to date", onnx_path)
            return onnx_path, False
        raise MixinError(f"{onnx_path} exists and was not exported from {h5_path}; use "
                         "--overwrite to replace it")
    from .model import load_cdae

    model = load_cdae(h5_path, channels=None)  # any number of input channels (the model family)
    name = os.path.splitext(os.path.basename(h5_path))[0]
    proto = keras_to_onnx(model, name=name, metadata={SOURCE_KEY: os.path.basename(h5_path),
                                                      SHA256_KEY: digest})
    with atomic_path(onnx_path) as tmp:
        onnx.save(proto, str(tmp))
    return onnx_path, True


def export_dir(model_dir: str | os.PathLike, sources: Iterable[str] | None = None,
               overwrite: bool = False) -> list[str]:
    """Export the ``model_*.h5`` files of ``model_dir`` (``sources``; default: every source whose
    ``.h5`` is there, at least one) to ``.onnx`` beside them; returns the paths written.

    Raises :class:`MixinError` as :func:`export_onnx`, and for a missing folder or no model."""
    from .model import model_paths

    absent = [m for m in ("tensorflow", "keras", "h5py", "onnx") if not installed(m)]
    if absent:
        raise MixinError(f"exporting to ONNX needs {', '.join(absent)}, not installed: {TRAIN_EXTRA}")
    model_dir = str(model_dir)
    if not os.path.isdir(model_dir):
        raise MixinError(f"model directory not found: {model_dir}")
    paths = model_paths(model_dir, params.SOURCES if sources is None else sources)
    if sources is None:
        paths = {s: p for s, p in paths.items() if os.path.isfile(p)}
        if not paths:
            raise MixinError(f"no model_*.h5 file in {model_dir}")
    return _export_all(paths.values(), overwrite)


def _export_all(h5_paths, overwrite):
    """:func:`export_onnx` of each path, logged: the paths written."""
    written = []
    for p in h5_paths:
        out, done = export_onnx(p, overwrite=overwrite)
        log.info("%s %s", "exported" if done else "up to date:", out)
        if done:
            written.append(out)
    return written


def export_after_save(h5_paths: Iterable[str | os.PathLike]) -> list[str]:
    """The training hook: export freshly saved ``.h5`` models (replacing their old ``.onnx``).

    Without the ``onnx`` package this only warns (the folder then runs with the tf backend, and
    a stale ``.onnx`` beside a new ``.h5`` is refused by the separator)."""
    if not installed("onnx"):
        log.warning("onnx is not installed: no .onnx written beside the models (%s, then "
                    "train_util.py --export-onnx --model-dir DIR)", TRAIN_EXTRA)
        return []
    return _export_all(h5_paths, overwrite=True)
