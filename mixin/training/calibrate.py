"""``--calibrate`` (docs/training.md): one output gain per network (percussive and vocal, relative
to harmonic) fitted for the soft masks, minimising the squared error of ``M_s * |X|`` against the
true ``|S_s|``, folded into the last convolution, a ReLU (``relu(g * z) = g * relu(z)``, ``g > 0``),
so the calibrated files are ordinary MiXiN models. Chunks: the real training songs' ``v`` segments
of a prepared data dir, or examples of :class:`mixin.training.mixing.Mixer` (validation songs held out).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import layout, params
from ..io import files as fileio
from ..errors import MixinError
from .engine import TrainConfig

if TYPE_CHECKING:
    import keras

log = logging.getLogger("mixin")

GRID_DB = (-24.0, 24.0, 6.0)  #: coarse grid of gains (dB): start, stop (inclusive), step
FINE_DB = (3.0, 1.0)  #: then a fine grid around the best: +- range, step
CALIBRATION_JSON = "calibration.json"  #: the record written beside the calibrated models
ANCHOR = "harmonic"  #: the source whose scale is kept (the others' gains are relative to it)
UNCALIBRATED = "model_{}.uncalibrated.h5"


def scale_output(model: keras.Model, gain: float) -> keras.Model:
    """Multiply the model's output by ``gain`` (> 0, finite) by scaling its last Conv2D layer (the CDAE's 1x1
    ReLU output), in place; returns ``model``. :class:`MixinError` for a bad gain or no such ReLU layer."""
    if not gain > 0 or not np.isfinite(gain):
        raise MixinError(f"a calibration gain must be a positive number, got {gain}")
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    if not convs:
        raise MixinError(f"model {model.name} has no Conv2D layer to calibrate")
    layer = convs[-1]
    if getattr(getattr(layer, "activation", None), "__name__", "") != "relu":
        raise MixinError(f"the last convolution of model {model.name} is not a ReLU layer: "
                         "its output cannot be scaled by its weights")
    layer.set_weights([w * np.asarray(gain, dtype=w.dtype) for w in layer.get_weights()])
    return model


def mask_error(powers: dict[str, np.ndarray], mix_mag: np.ndarray, targets: dict[str, np.ndarray],
               gains: dict[str, float], block: int = 8) -> float:
    """Sum over sources of ||M_s * |X| - |S_s|||^2, where M_s are the soft masks
    (:func:`mixin.masks.soft_masks`) of the estimates' powers scaled by ``gains`` (amplitude gains),
    computed ``block`` chunks at a time (the masks' memory). powers, targets : dict source -> float32
    [shape=(n, rows, cols)]; mix_mag : same shape."""
    from ..masks import soft_masks

    g2 = {s: np.float32(gains[s] ** 2) for s in powers}
    err = 0.0
    for a in range(0, len(mix_mag), block):
        b = slice(a, a + block)
        masks = soft_masks({s: g2[s] * p[b] for s, p in powers.items()})
        for s, d in masks.items():
            d *= mix_mag[b]
            d -= targets[s][b]
            err += float(np.vdot(d.ravel(), d.ravel()))
    return err


def fit_gains(powers: dict[str, np.ndarray], mix_mag: np.ndarray, targets: dict[str, np.ndarray],
              anchor: str = ANCHOR, grid: tuple[float, float, float] = GRID_DB,
              fine: tuple[float, float] = FINE_DB) -> tuple[dict[str, float], float, float]:
    """Gains (dB) of the non-anchor sources minimising :func:`mask_error` (coarse, then fine grid), arrays
    as there: (gains_db dict source -> dB, the anchor's 0.0 included; error at 0 dB; error at the fit)."""
    others = [s for s in powers if s != anchor]
    coarse = np.arange(grid[0], grid[1] + grid[2] / 2, grid[2])

    def err(db: Sequence[float]) -> float:
        g = {anchor: 1.0, **{s: 10 ** (d / 20) for s, d in zip(others, db)}}
        return mask_error(powers, mix_mag, targets, g)

    base = err([0.0] * len(others))
    best = (base, (0.0,) * len(others))
    for steps in (coarse, np.arange(-fine[0], fine[0] + fine[1] / 2, fine[1])):
        centre = best[1]  # 0 dB, then the best of the coarse grid
        for off in itertools.product(steps, repeat=len(others)):
            db = tuple(c + o for c, o in zip(centre, off))
            if (e := err(db)) < best[0]:
                best = (e, db)
    return {anchor: 0.0, **{s: float(d) for s, d in zip(others, best[1])}}, base, best[0]


def _training_chunks(data_dir, n_chunks, seed):
    """(folder, chunk, channel) triples drawn from the ``v`` folders of the real training songs:
    the whole chunks of each segment (``segment_samples // CHUNK_SIZE``), never its zero-padded
    last one."""
    doc = layout.read_songs(data_dir)
    train = set(doc["split"]["train"])
    songs = [s for s in doc["songs"] if s["index"] in train and not s["augmented"]]
    if not songs:
        raise MixinError(f"no real training song in {layout.songs_json(data_dir)} to calibrate on")
    per_seg = doc["segment_samples"] // params.CHUNK_SIZE
    if per_seg < 1:
        raise MixinError(f"segments of {doc['segment_samples']} samples are shorter than one chunk "
                         f"({params.CHUNK_SIZE} samples): nothing to calibrate on")
    slots = [(layout.segment_folder(data_dir, s["index"], g, "v"), k, c) for s in songs
             for g in s["segments"] for k in range(per_seg) for c in range(s["channels"])]
    if missing := sorted({str(p) for p, _, _ in slots if not p.is_dir()}):
        raise MixinError(f"segment folder missing: {missing[0]} (run --prepare-stems again)")
    rng = np.random.default_rng([int(seed), 2])
    pick = rng.choice(len(slots), size=min(n_chunks, len(slots)), replace=False)
    return [slots[i] for i in sorted(pick)], [s["index"] for s in songs]


def _mixed_chunks(cfg, n_chunks, seed, batch_size):
    """Magnitudes of ``n_chunks`` examples of the mixer (seed ``seed``) over the training songs of
    ``cfg`` (a mix :class:`~mixin.training.engine.TrainConfig`): (mixture, {source: target}), each
    float32 [shape=(n, rows, cols)], and the song names."""
    from .mixing import Mixer, build_catalogue

    cfg.mix.check()
    songs = build_catalogue(cfg.stem_dirs, exclude=set(cfg.validation_songs), jobs=os.cpu_count() or 1)
    mixer = Mixer(songs, cfg.mix, seed=seed)
    batches = [mixer.batch(b, batch_size) for b in range(-(-n_chunks // batch_size))]
    mix_mag = np.concatenate([x[..., 0] for x, _ in batches])[:n_chunks]
    targets = {s: np.concatenate([ys[i][..., 0] for _, ys in batches])[:n_chunks]
               for i, s in enumerate(params.SOURCES)}
    return mix_mag, targets, [s.name for s in songs]


def _segment_chunks(data_dir, n_chunks, seed, batch_size):
    """As :func:`_mixed_chunks`, from the segments of a prepared data dir (hard chunks of
    :func:`mixin.chunks.cut`); song indices."""
    from .. import io as audio
    from ..chunks import cut
    from ..nsgt import get_nsgt

    chunks, songs = _training_chunks(data_dir, n_chunks, seed)
    names = layout.SEGMENT_PARTS["v"]  # "mix" and the three sources
    data = {n: np.empty((len(chunks), params.CHUNK_SIZE), np.float32) for n in names}
    cache_key, cache = None, None
    for i, (folder, k, c) in enumerate(chunks):
        if folder != cache_key:  # the folder's chunks [shape=(n_chunks, n_channels, CHUNK_SIZE)]
            cache_key, cache = folder, {n: cut(audio.read_audio(layout.segment_file(folder, n))[0].T) for n in names}
        for n in names:
            data[n][i] = cache[n][k, c]
    nsgt = get_nsgt()
    mags = {k: np.concatenate([np.abs(nsgt.forward(v[a:a + batch_size])).astype(np.float32)
                               for a in range(0, len(chunks), batch_size)]) for k, v in data.items()}
    return mags.pop("mix"), mags, songs


def calibrate(data: str | os.PathLike | TrainConfig = "data", model_dir: str | os.PathLike = "model",
              n_chunks: int = 128, seed: int = 0, overwrite: bool = False,
              batch_size: int = 8) -> dict[str, Any]:
    """Fit and fold the output gains of the three networks in ``model_dir`` on chunks of ``data``
    (a prepared data dir, or a mix :class:`~mixin.training.engine.TrainConfig`); returns the record
    written to ``model_dir/calibration.json``. :class:`MixinError` if ``n_chunks`` is not a positive
    integer, a model file or the data is missing, or ``model_dir`` is calibrated and not ``overwrite``."""
    from ..model import load_cdae, model_paths, save_cdae
    from ..onnxexport import export_after_save
    from ..separation.separate import Separator

    t0 = time.perf_counter()
    if int(n_chunks) != n_chunks or n_chunks < 1:
        raise MixinError(f"the number of calibration chunks must be a positive integer, got {n_chunks!r}")
    model_dir = Path(model_dir)
    paths, record_path = model_paths(model_dir), model_dir / CALIBRATION_JSON
    if record_path.exists() and not overwrite:
        raise MixinError(f"{model_dir} is already calibrated ({CALIBRATION_JSON}); use --overwrite "
                         "to calibrate again from the uncalibrated models")
    again = record_path.exists()  # calibrate again from the kept uncalibrated models
    sources = {s: model_dir / UNCALIBRATED.format(s) if again else Path(p) for s, p in paths.items()}
    if missing := [p for p in sources.values() if not p.is_file()]:
        why = ("the uncalibrated model of an earlier calibration is gone" if again else
               "calibration needs all three models in one directory")
        raise MixinError(f"model file not found: {missing[0]} ({why})")
    mixed = isinstance(data, TrainConfig)
    mix_mag, targets, songs = (_mixed_chunks if mixed else _segment_chunks)(data, int(n_chunks), seed, batch_size)
    models = {s: load_cdae(p) for s, p in sources.items()}
    sep = Separator(models=models)  # the networks run as in separation
    powers = {s: np.empty_like(mix_mag) for s in params.SOURCES}
    for a in range(0, len(mix_mag), batch_size):
        est = sep.estimate(mix_mag[a:a + batch_size])
        for s in params.SOURCES:
            powers[s][a:a + batch_size] = np.square(est[s])
    gains_db, before, after = fit_gains(powers, mix_mag, targets)
    log.info("calibration gains (dB, relative to %s): %s; mask error %.4g -> %.4g (%.1f %%)", ANCHOR,
             ", ".join(f"{s} {g:+.1f}" for s, g in gains_db.items() if s != ANCHOR), before, after,
             100 * (after - before) / before if before else 0.0)

    # keep the uncalibrated models, write the calibrated ones
    if not again:
        for s, p in paths.items():
            fileio.copy_file(p, model_dir / UNCALIBRATED.format(s))
    for s, p in paths.items():
        save_cdae(scale_output(models[s], 10 ** (gains_db[s] / 20)), p)
    export_after_save(paths.values())  # the .onnx of the calibrated models replace the old ones
    record = {"gains_db": gains_db, "anchor": ANCHOR, "mask_error": {"uncalibrated": before, "calibrated": after},
              "n_chunks": len(mix_mag), "seed": int(seed), "songs": songs,
              **({"stem_dirs": [str(d) for d in data.stem_dirs], "mix": data.mix.to_json()} if mixed
                 else {"data_dir": str(data)}),
              "seconds": round(time.perf_counter() - t0, 1),
              "uncalibrated_models": {s: UNCALIBRATED.format(s) for s in paths}}
    fileio.write_json(record_path, record)
    return record
