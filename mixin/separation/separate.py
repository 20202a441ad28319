"""Separation: the mixture's NSGT, three CDAE magnitude estimates, soft masks, inverse NSGT.

The algorithm of the published MiXiN, per chunk of ``CHUNK_SIZE`` samples at 44.1 kHz and per channel:

1. ``C = NSGT(chunk)``, complex [shape=(96, 1948)];
2. ``E_s = CDAE_s(|C|)`` for s in harmonic, percussive, vocal;
3. default: ``Y_s = E_s**2 / (E_h**2 + E_p**2 + E_v**2 + 1e-7) * C`` (with ``instrumental``: no vocal term);
   ``single_model``: ``Y_s = E_s * C / |C|`` (each network's estimate with the mixture's phase);
4. ``y_s = NSGT^-1(Y_s)``.

Unlike the original, every sample is processed (the last chunk is zero-padded), all channels are
kept, any sample rate is accepted (resampled to 44.1 kHz and back), work is batched over chunks and
channels, and the signal is streamed so that memory does not grow with the length of the input.

Chunks overlap by default: consecutive chunks share ``overlap * CHUNK_SIZE`` samples, over which the
earlier chunk's output fades out and the later one's fades in (sin^2/cos^2 tapers summing to one),
which removes the discontinuities at hard chunk boundaries. ``overlap=0`` reproduces the original's
hard boundaries exactly. Cutting, the chunk count and the overlap-add weights come from
:mod:`mixin.chunks`; :meth:`Separator.stream` overlap-adds incrementally, as
:func:`mixin.chunks.overlap_add` does for a whole signal.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

from .. import params
from ..chunks import cut, hop_size, n_chunks, weights
from ..errors import MixinError
from ..modelsets import default_model_dir  # noqa: F401  (the shipped set; also imported from here)

if TYPE_CHECKING:
    from ..io import AudioInfo

log = logging.getLogger("mixin")


#: Chunks (over time and channels) sent to the networks at once.
DEFAULT_BATCH = 8

#: Samples per block when streaming from a file (at the file's rate).
READ_BLOCK = 1 << 18


class Separator:
    """MiXiN separator.

    - ``model_dir``: ``model_harmonic``, ``model_percussive`` (and ``model_vocal``) as ``.onnx``
      and/or ``.h5`` files; default: the shipped models (:func:`default_model_dir`).
    - ``instrumental``: leave the vocal network out (harmonic and percussive outputs only).
    - ``single_model``: each network's magnitude estimate with the mixture's phase, not soft masks.
    - ``overlap`` in [0, 0.5]: fraction of a chunk shared by consecutive chunks (0: the original's
      hard boundaries). ``batch_size``: chunks per network call.
    - ``models``: already-built Keras models keyed by source, run with the ``tf`` backend.
    - ``inputs``: the networks' input channels (:func:`mixin.model.network_input`): default the
      ``model.json`` of ``model_dir`` (absent: the magnitude alone), or ("mag",) with ``models``.
    - ``jit``: compile the networks with XLA (``tf``). Off by default: on a 2-core CPU it measured
      4x slower than plain Keras (about 19 vs 80 chunks/s, batch 8) and compiles for seconds.
    - ``backend`` (:mod:`mixin.backends`): "onnx" (ONNX Runtime, ``model_*.onnx``), "tf"
      (TensorFlow, ``model_*.h5``) or "auto": ONNX when its files and ``onnxruntime`` are there.
    - ``pipeline``: :meth:`stream` keeps two batches in flight on two threads (the transforms of
      one run while the networks process the other); the same numbers as ``pipeline=False``.
    - ``hpss_anchor`` in [0, 1]: how much of the harmonic/percussive split of the soft masks is
      median-filtering HPSS's (:func:`mixin.masks.anchored_masks`); None: the ``model.json``'s
      (absent: 0, the published masks), or 0 with ``models``. No effect with ``single_model``.
    """

    def __init__(self, model_dir=None, instrumental=False, single_model=False,
                 overlap=params.DEFAULT_OVERLAP, batch_size=DEFAULT_BATCH, models=None, jit=False,
                 inputs=None, backend="auto", pipeline=True, hpss_anchor=None):
        import threading

        from .. import backends
        from ..nsgt import get_nsgt

        if int(batch_size) != batch_size or batch_size < 1:
            raise MixinError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.sources = params.SOURCES[:2] if instrumental else params.SOURCES
        self.instrumental = bool(instrumental)
        self.single_model = bool(single_model)
        self.overlap = overlap
        self.chunk = params.CHUNK_SIZE
        self.hop = hop_size(overlap, self.chunk)
        self.batch_size = int(batch_size)
        self.jit = bool(jit)
        self.model_dir = str(model_dir) if model_dir is not None else default_model_dir()
        if backend not in backends.BACKENDS:
            raise MixinError(f"backend must be one of {', '.join(backends.BACKENDS)}, got {backend!r}")
        if models is not None:
            if backend == "onnx":
                raise MixinError("models given as Keras objects run with the tf backend, not onnx")
            self.backend = backends.TFBackend(models, self.sources, jit=self.jit)
        else:
            self.backend = backends.load(self.model_dir, self.sources, backend, jit=self.jit)
        if hpss_anchor is not None:
            from ..masks import check_anchor

            hpss_anchor = check_anchor(hpss_anchor)
        if models is None and (inputs is None or hpss_anchor is None):
            from ..model import read_model_spec

            spec = read_model_spec(self.model_dir)
            inputs = spec["inputs"] if inputs is None else inputs
            hpss_anchor = spec["hpss_anchor"] if hpss_anchor is None else hpss_anchor
        self.inputs = tuple(inputs or ("mag",))
        self.hpss_anchor = float(hpss_anchor or 0.0)
        self.nsgt = get_nsgt()
        self.pipeline = bool(pipeline)
        self._networks_lock = threading.Lock()  # one batch in the networks at a time
        self._timings_lock = threading.Lock()
        self.timings = {"transform": 0.0, "networks": 0.0}

    @property
    def models(self):
        """The Keras models keyed by source (``tf`` backend; None with ``onnx``)."""
        return getattr(self.backend, "models", None)

    # ---------------------------------------------------------------- networks
    def estimate(self, mag: np.ndarray, hpss_est=None) -> dict[str, np.ndarray]:
        """Run the networks (:meth:`mixin.backends.Backend.run`) on the NSGT magnitudes of b chunks,
        float32 [shape=(b, 96, 1948)] (``hpss_est``: their :func:`mixin.hpss.hpss` when already
        computed); returns dict source -> float32 [shape=(b, 96, 1948)]."""
        from ..model import network_input

        return self.backend.run(network_input(mag, self.inputs, hpss_est))

    def _hpss(self, mag):
        """:func:`mixin.hpss.hpss` of ``mag`` when the networks or the masks need it, else None."""
        if (self.hpss_anchor and not self.single_model) or any(
                i.startswith("hpss_") or i == "onset" for i in self.inputs):
            from ..hpss import hpss

            return hpss(mag)
        return None

    def _masks(self, est, hpss_est):
        """The soft masks of the estimates ``est``, anchored to ``hpss_est`` by ``hpss_anchor``."""
        masks = self._soft_masks(est)
        if self.hpss_anchor:
            from ..masks import anchored_masks

            masks = anchored_masks(masks, *hpss_est, self.hpss_anchor)
        return masks

    # ---------------------------------------------------------------- chunks
    def process_chunks(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Separate a batch of chunks, float32 [shape=(b, CHUNK_SIZE)]; returns dict source ->
        float32 [shape=(b, CHUNK_SIZE)]."""
        t0 = time.perf_counter()
        coefs = self.nsgt.forward(frames)
        mag = np.abs(coefs)
        hpss_est = self._hpss(mag)
        with self._networks_lock:
            t1 = time.perf_counter()
            est = self.estimate(mag, hpss_est)
            t2 = time.perf_counter()
        out = {}
        if self.single_model:
            # The published MiXiN combines each estimate with the mixture's phase through
            # pol2cart(rho, phi) = rho*cos(phi) + 1j*rho*sin(phi) = rho*exp(1j*phi), but passes
            # the unit phasor P = C/|C| (librosa.magphase) as phi: the result is rho*exp(1j*P).
            # Reproduced as published so that --single-model outputs match the original's.
            phasor = np.divide(coefs, mag, out=np.ones_like(coefs), where=mag > 0)
            rot = np.exp(1j * phasor).astype(coefs.dtype, copy=False)
            for s in self.sources:
                out[s] = self.nsgt.backward(est[s] * rot)
        else:
            for s, m in self._masks(est, hpss_est).items():
                # real mask times complex coefficients, the real and imaginary parts apart (no
                # complex promotion; twice as fast as on the interleaved float pairs)
                y = np.empty_like(coefs)
                np.multiply(coefs.real, m, out=y.real)
                np.multiply(coefs.imag, m, out=y.imag)
                out[s] = self.nsgt.backward(y)
        out = {s: o.astype(np.float32, copy=False) for s, o in out.items()}
        t3 = time.perf_counter()
        with self._timings_lock:
            self.timings["transform"] += (t1 - t0) + (t3 - t2)
            self.timings["networks"] += t2 - t1
        return out

    def masks(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """The soft masks of a batch of chunks ``frames`` float32 [shape=(b, CHUNK_SIZE)] (for
        inspection and tests): dict source -> float32 [shape=(b, 96, 1948)], each in [0, 1],
        summing to at most one in every bin (exactly one up to the 1e-7 guard)."""
        mag = np.abs(self.nsgt.forward(frames))
        hpss_est = self._hpss(mag)
        return self._masks(self.estimate(mag, hpss_est), hpss_est)

    @staticmethod
    def _soft_masks(est):
        """M_s = E_s^2 / (sum of E^2 + 1e-7), as the published MiXiN (:func:`mixin.masks.soft_masks`)."""
        from ..masks import soft_masks

        return soft_masks({s: np.square(e) for s, e in est.items()})

    # ---------------------------------------------------------------- streaming
    def stream(self, blocks: Iterable[np.ndarray], channels: int,
               progress: Callable[[int], object] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Separate a stream of 44.1 kHz float32 blocks [shape=(n_i, channels)]; ``progress`` is
        called with the number of chunks done after each batch. Yields dict source -> float32
        [shape=(m_j, channels)], in order; the m_j add up to the number of input samples."""
        N, H = self.chunk, self.hop
        w_first, w_later = weights(H, N)
        frames_per_batch = max(1, self.batch_size // channels)
        buf = np.zeros((0, channels), np.float32)  # input samples from buf_start on
        acc = {s: np.zeros((0, channels), np.float32) for s in self.sources}  # output from out_start
        buf_start = out_start = k = n_in = 0  # k: the next chunk's index; n_in: samples read
        ended = False
        it = iter(blocks)
        pending = collections.deque()  # (chunk indices, future result) of the batches in flight
        depth = 2 if self.pipeline else 1
        pool = concurrent.futures.ThreadPoolExecutor(depth) if self.pipeline else None
        try:
            while True:
                # read until a batch of chunks is available (or the input ends)
                while not ended and buf_start + len(buf) < (k + frames_per_batch - 1) * H + N:
                    try:
                        b = next(it)
                    except StopIteration:
                        ended = True
                        break
                    b = np.asarray(b, dtype=np.float32)
                    if b.ndim != 2 or b.shape[1] != channels:
                        raise MixinError(f"stream block has shape {b.shape}, expected (n, {channels})")
                    n_in += len(b)
                    buf = np.concatenate([buf, b]) if len(buf) else b
                # chunks ready: those whose end is available, or all remaining ones at the end
                avail = -(-n_in // H) if ended else (buf_start + len(buf) - N) // H + 1
                ks = list(range(k, min(k + frames_per_batch, max(k, avail))))
                if ks:
                    b0 = ks[0] * H - buf_start  # chunks ks from the buffer (the last may be zero-padded)
                    frames = cut(buf[b0:b0 + (len(ks) - 1) * H + N].T, H, N)[:len(ks)]
                    frames = np.ascontiguousarray(frames.reshape(-1, N))
                    # in a worker thread, beside the batch before (or at once, without the pipeline)
                    pending.append((ks, pool.submit(self.process_chunks, frames) if pool else
                                    _Done(self.process_chunks(frames))))
                    k = ks[-1] + 1
                    drop = k * H - buf_start
                    if drop > 0:
                        buf = buf[drop:]
                        buf_start += drop
                elif not ended:
                    continue
                last = ended and k * H >= n_in  # every chunk is in flight or done
                while pending and (len(pending) >= depth or last):
                    done, fut = pending.popleft()
                    res = fut.result()
                    # overlap-add with the chunks' weights (mixin.chunks.overlap_add, incrementally)
                    end = done[-1] * H + N
                    for s in self.sources:
                        y = res[s].reshape(len(done), channels, N)
                        a = acc[s]
                        grow = end - out_start - len(a)
                        if grow > 0:
                            a = np.concatenate([a, np.zeros((grow, channels), np.float32)])
                        for i, kk in enumerate(done):
                            w = w_later if kk else w_first
                            a[kk * H - out_start: kk * H - out_start + N] += y[i].T * w[:, None]
                        acc[s] = a
                    if progress is not None:
                        progress(len(done) * channels)
                    # samples before the next chunk's start are final
                    nxt = done[-1] + 1
                    final = min(nxt * H, n_in) if ended else nxt * H
                    n_final = final - out_start
                    if n_final > 0:
                        yield {s: acc[s][:n_final] for s in self.sources}
                        for s in self.sources:
                            acc[s] = acc[s][n_final:]
                        out_start = final
                if last and not pending:
                    break
        finally:
            if pool is not None:
                for _, fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True)

    # ---------------------------------------------------------------- arrays
    def separate(self, x: np.ndarray, sr: int = params.SAMPLE_RATE,
                 progress: Callable[[int], object] | None = None) -> dict[str, np.ndarray]:
        """Separate ``x`` [shape=(n,) or (n, channels)] at ``sr`` Hz (any rate; resampled to 44.1 kHz
        and back) into dict source -> float32 array shaped like ``x``; ``progress`` as for
        :meth:`stream`. :class:`MixinError` for an array :func:`mixin.io.as_2d` refuses, NaN/Inf
        samples or a sample rate that is not a positive integer."""
        from ..io import as_2d, check_finite, resample, resampled_length

        x2, was_1d = as_2d(x)
        check_finite(x2, "input")
        if not (isinstance(sr, (int, np.integer)) or float(sr).is_integer()) or sr <= 0:
            raise MixinError(f"sample rate must be a positive integer, got {sr!r}")
        sr = int(sr)
        n, ch = x2.shape  # n > 0: as_2d refuses empty arrays
        m = resampled_length(n, sr, params.SAMPLE_RATE)
        y = resample(x2, sr, params.SAMPLE_RATE, m) if sr != params.SAMPLE_RATE else x2
        step = max(self.hop, 1) * 8
        outs = list(self.stream((y[i:i + step] for i in range(0, m, step)), ch, progress=progress))
        res = {}
        for s in self.sources:
            z = np.concatenate([o[s] for o in outs]) if outs else np.zeros((0, ch), np.float32)
            if sr != params.SAMPLE_RATE:
                z = resample(z, params.SAMPLE_RATE, sr, n)
            res[s] = z[:, 0] if was_1d else z
        return res


def _Done(result):
    """A future already holding ``result`` (``pipeline=False``)."""
    fut = concurrent.futures.Future()
    fut.set_result(result)
    return fut


def xtract_mixin(x: np.ndarray, instrumental: bool = False, single_model: bool = False,
                 pretrained_model_dir: str | os.PathLike | None = None,
                 overlap: float = params.DEFAULT_OVERLAP, sr: int = params.SAMPLE_RATE,
                 backend: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Separate ``x`` [shape=(n,) or (n, channels)] at ``sr`` Hz into (harmonic, percussive, vocal),
    each shaped like ``x`` (the original MiXiN's API). ``instrumental`` leaves the vocal model out
    (vocal None); ``single_model``, ``overlap`` and ``backend`` as for :class:`Separator`;
    ``pretrained_model_dir`` holds ``model_*.onnx`` and/or ``model_*.h5`` (default: the shipped
    models). :class:`MixinError` as :meth:`Separator.separate` and for unusable models.
    """
    sep = Separator(model_dir=pretrained_model_dir, instrumental=instrumental,
                    single_model=single_model, overlap=overlap, backend=backend)
    out = sep.separate(x, sr)
    return out["harmonic"], out["percussive"], out.get("vocal")


def _resample_stream(blocks, resampler):
    """Feed ``blocks`` through a streaming :class:`mixin.io.Resampler`, flushing at the end."""
    it = iter(blocks)
    prev = next(it, None)
    while prev is not None:
        nxt = next(it, None)
        out = resampler.process(prev, last=nxt is None)
        if len(out):
            yield out
        prev = nxt


def separate_file(sep: Separator, path: str | os.PathLike, out_paths: Mapping[str, str | os.PathLike],
                  subtype: str | None = "FLOAT", progress: bool | Callable[[int, int], object] = False,
                  timings: dict[str, float] | None = None) -> AudioInfo:
    """Separate one audio file into one file per source, streaming (memory bounded by the block size).

    ``path``: any rate and channel count, any format libsndfile reads, or what only ffmpeg reads
    (AAC/M4A, WMA, video files) when it is on PATH, decoded first to a temporary WAV
    (:func:`mixin.io.decoded`). ``out_paths``: source -> destination, its extension picks the
    container; each is written atomically (on any error no output file is created). ``subtype``:
    libsndfile subtype of the outputs (:func:`mixin.io.output_subtype`). ``progress``: True shows a
    tqdm bar on stderr; a callable(done, total) gets the chunks done (over channels) after each
    batch, and (0, total) before the first. ``timings`` accumulates seconds in "read" (reading,
    resampling), "transform", "networks" and "write" (resampling back, writing).

    Returns the input's :class:`mixin.io.AudioInfo` (of the decoded copy for ffmpeg inputs, with
    the input's ``path``). :class:`MixinError` (one line): unreadable input, missing output path,
    write error.
    """
    from ..io import decoded

    missing = [s for s in sep.sources if s not in out_paths]
    if missing:
        raise MixinError(f"no output path given for {', '.join(missing)}")
    with decoded(path) as src:
        info = _separate_file(sep, src, out_paths, subtype, progress, timings,
                              name=os.path.basename(str(path)))
    return info._replace(path=str(path))


def _separate_file(sep, path, out_paths, subtype, progress, timings, name):
    """:func:`separate_file` of a file libsndfile reads."""
    import contextlib

    from ..io import AtomicWriter, Resampler, iter_blocks, probe, resampled_length

    info = probe(path)
    sr, ch, n = info.samplerate, info.channels, info.frames
    fs = params.SAMPLE_RATE
    m = resampled_length(n, sr, fs)
    t = timings if timings is not None else {}
    for key in ("read", "transform", "networks", "write"):
        t.setdefault(key, 0.0)

    def timed_read(gen: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        while True:
            t0 = time.perf_counter()
            b = next(gen, None)
            t["read"] += time.perf_counter() - t0
            if b is None:
                return
            yield b

    blocks = iter_blocks(path, READ_BLOCK)
    if sr != fs:
        blocks = _resample_stream(blocks, Resampler(sr, fs, ch, m))
    blocks = timed_read(blocks)
    back = {s: Resampler(fs, sr, ch, n) for s in sep.sources} if sr != fs else None

    bar, update, total = None, None, n_chunks(m, sep.hop) * ch
    if callable(progress):  # the caller's callback with the running count, in place of a tqdm bar
        count = [0]

        def update(k):
            count[0] += k
            progress(count[0], total)

        progress(0, total)
    elif progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="chunk", leave=False, desc=name[:30], dynamic_ncols=True)
        update = bar.update
    t_sep0, done = dict(sep.timings), 0
    try:
        with contextlib.ExitStack() as stack:
            writers = {s: stack.enter_context(AtomicWriter(out_paths[s], sr, ch, subtype, frames=n))
                       for s in sep.sources}
            for out in sep.stream(blocks, ch, progress=update):
                t0 = time.perf_counter()
                done += len(out[sep.sources[0]])
                for s in sep.sources:
                    y = out[s]
                    if back is not None:
                        y = back[s].process(y, last=done >= m)
                    writers[s].write(y)
                t["write"] += time.perf_counter() - t0
            if done != m:
                raise MixinError(f"{path}: read {done} samples at 44.1 kHz, expected {m} "
                                 "(the file is shorter than its header says)")
            if back is not None:  # e.g. one sample at 96 kHz is no sample at 44.1 kHz: flush
                for s in sep.sources:
                    if not back[s].finished:
                        writers[s].write(back[s].process(np.zeros((0, ch), np.float32), last=True))
    finally:
        if bar is not None:
            bar.close()
        for key in ("transform", "networks"):
            t[key] += sep.timings[key] - t_sep0[key]
    return info
