"""Inference backends: what runs the networks of a model folder during separation.

Everything above the networks (NSGT, chunking, overlap, masks, streaming, outputs) is one code path
(:class:`mixin.separation.separate.Separator`); a backend only loads the networks and runs a batch:

    backend.run(mag)   mag float32 [shape=(b, 96, 1948)] -> dict source -> float32 [shape=(b, 96, 1948)]

(or the networks' input with its channels, [shape=(b, 96, 1948, c)], for networks that take more
than the magnitude).

Two backends:

``onnx``
    ONNX Runtime on the ``model_*.onnx`` files (exported from the ``.h5`` files by
    :mod:`mixin.onnxexport`, never by hand). Light: no TensorFlow; the default install.
``tf``
    TensorFlow/Keras on the ``model_*.h5`` files (the published format; training, export and
    ``.h5``-only folders such as the original's weights). Needs the ``[train]`` extra.

``auto`` (the default) is ``onnx`` when every network has its ``.onnx`` file and ``onnxruntime``
is installed, ``tf`` otherwise. An ``.onnx`` records the sha256 of the ``.h5`` it was exported
from; when that ``.h5`` is beside it and its hash differs, the ``.onnx`` is refused (stale export).
An ``.onnx`` with no ``.h5`` beside it is used as it is.

Neither ``onnxruntime`` nor TensorFlow is imported by this module: only when a backend is loaded.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import params
from .errors import MixinError

if TYPE_CHECKING:
    import keras

log = logging.getLogger("mixin")

#: ``--backend`` choices.
BACKENDS = ("auto", "onnx", "tf")

#: The install command of the extra that brings TensorFlow, Keras, h5py, matplotlib and onnx.
TRAIN_EXTRA = 'pip install "mixin[train]"'

#: ONNX metadata keys written by the exporter: the ``.h5`` file's name and sha256.
SOURCE_KEY = "mixin_h5_file"
SHA256_KEY = "mixin_h5_sha256"

#: Default ONNX Runtime settings (chosen by measurement, see docs/backends.md; read when a backend
#: is made, so setting them later applies to the backends made after). ``ORT_CPUS`` None = the CPUs
#: of the process's affinity (a ``--jobs`` worker sets its share). ``ORT_PARALLEL`` None = the
#: networks run at once on a small thread pool, one per CPU (at most the number of networks): ONNX
#: Runtime releases the GIL, so whichever stage is the bottleneck both cores work.
#: ``ORT_THREADS`` None = the CPUs but one, shared among the networks running at once (at least
#: one each: 1 on 2 cores; 2 threads in one session cost more CPU time and were 25-40 % slower
#: beside other processes). ``ORT_CHUNKS`` = chunks per session call: one chunk's activations
#: stay in the cache (the first convolution and pooling write and read 9 MB a chunk): 15-35 % less
#: CPU time than the batch of 8 in one call (busy machine), and 100 MB less memory.
#: Graph optimisations up to "extended" ("all" adds the NCHWc layout, whose
#: reorders cost more than they save on these 1- and 12-channel images: 8.1 vs 7.2 ms a chunk);
#: one memory arena shared by the three sessions that allocates the sizes asked (ONNX Runtime's
#: default, an arena per session growing by powers of two, peaked at 1.2 GB for batch 8); idle
#: worker threads sleep instead of spinning (spinning burnt 60 % more CPU time for the same
#: separation, taken from the transform and from other processes).
ORT_CPUS = None
ORT_PARALLEL = None
ORT_THREADS = None
ORT_CHUNKS = 1
ORT_OPT_LEVEL = "extended"
ORT_ARENA = "shared"
ORT_SPIN = False

#: ``arena`` choices of :class:`OnnxBackend`.
ARENAS = ("shared", "session", "off")

_shared_arena = []  # registered once per process (ONNX Runtime's environment is global)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def onnx_file(h5_path: str | os.PathLike) -> str:
    """The ``.onnx`` path beside a ``.h5`` model file (``model_vocal.h5`` -> ``model_vocal.onnx``)."""
    root, _ = os.path.splitext(str(h5_path))
    return root + ".onnx"


def h5_file(onnx_path: str | os.PathLike) -> str:
    """The ``.h5`` path beside an ``.onnx`` model file."""
    root, _ = os.path.splitext(str(onnx_path))
    return root + ".h5"


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_files(model_dir: str | os.PathLike, sources: Iterable[str] = params.SOURCES,
                backend: str = "tf") -> dict[str, str]:
    """Paths of the model files ``backend`` ("onnx" or "tf") reads for ``sources``."""
    from .model import model_paths

    paths = model_paths(model_dir, sources)
    return {s: onnx_file(p) for s, p in paths.items()} if backend == "onnx" else paths


def choose(backend: str, model_dir: str | os.PathLike,
           sources: Iterable[str] = params.SOURCES) -> str:
    """Resolve ``backend`` ("auto", "onnx" or "tf") for the models of ``model_dir``: "onnx" or "tf".

    Checks, without loading anything, that the files and the runtime are there; raises
    :class:`MixinError` (one line) naming what is missing: the folder, a model file, ONNX
    Runtime, or TensorFlow (with the extra that installs it).
    """
    if backend not in BACKENDS:
        raise MixinError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    sources = tuple(sources)
    model_dir = str(model_dir)
    if not os.path.isdir(model_dir):
        raise MixinError(f"model directory not found: {model_dir}")
    onnx = model_files(model_dir, sources, "onnx")
    h5 = model_files(model_dir, sources, "tf")
    have_onnx = all(os.path.isfile(p) for p in onnx.values())
    have_h5 = all(os.path.isfile(p) for p in h5.values())
    if backend == "auto":
        backend = "onnx" if have_onnx and (installed("onnxruntime") or not have_h5) else "tf"
        if backend == "tf" and not have_h5:
            # neither complete: report the first missing file of the richer kind
            backend = "onnx" if any(os.path.isfile(p) for p in onnx.values()) else "tf"
    if backend == "onnx":
        missing = [p for p in onnx.values() if not os.path.isfile(p)]
        if missing:
            hint = (f" (the folder has the .h5 models: export them with train_util.py "
                    f"--export-onnx --model-dir {model_dir}, or use --backend tf)"
                    if have_h5 else "")
            raise MixinError(f"model file not found: {missing[0]}{hint}")
        if not installed("onnxruntime"):
            raise MixinError("the onnx backend needs ONNX Runtime, which is not installed: "
                             "pip install onnxruntime")
        return "onnx"
    missing = [p for p in h5.values() if not os.path.isfile(p)]
    if missing:
        raise MixinError(f"model file not found: {missing[0]}")
    absent = [m for m in ("tensorflow", "keras", "h5py") if not installed(m)]
    if absent:
        raise MixinError(f"the .h5 models in {model_dir} need TensorFlow ({', '.join(absent)} "
                         f"not installed): {TRAIN_EXTRA}"
                         + ("" if have_onnx else
                            " (or export them to .onnx where it is installed: train_util.py "
                            "--export-onnx)"))
    return "tf"


class Backend:
    """Runs the networks of ``sources`` on batches of magnitudes (the interface; see the module)."""

    #: "onnx" or "tf"
    name = ""

    def __init__(self, sources: Iterable[str]) -> None:
        self.sources = tuple(sources)

    def run(self, mag: np.ndarray) -> dict[str, np.ndarray]:
        """The networks' estimates.

        Parameters
        ----------
        mag : float32 array [shape=(b, 96, 1948)] or [shape=(b, 96, 1948, c)]
            NSGT magnitudes of b chunks, or the networks' input channels.

        Returns
        -------
        dict source -> float32 array [shape=(b, 96, 1948)]
        """
        raise NotImplementedError


def _nhwc(mag: np.ndarray) -> np.ndarray:
    """The networks' input [shape=(b, rows, cols, c)] of magnitudes [shape=(b, rows, cols)] (c = 1)
    or of input channels already stacked."""
    x = np.ascontiguousarray(mag, np.float32)
    return x[..., None] if x.ndim == 3 else x

    def files(self) -> dict[str, str]:
        """The model files loaded, keyed by source (empty for models given as objects)."""
        return dict(getattr(self, "paths", {}))


class TFBackend(Backend):
    """Keras models run through one traced ``tf.function`` (optionally XLA-compiled with ``jit``).

    Parameters
    ----------
    models : dict source -> keras.Model
        Each maps [shape=(b, 96, 1948, 1)] to the same shape.
    jit : bool
        Compile with XLA (measured 4x slower on a 2-core CPU; off by default).
    """

    name = "tf"

    def __init__(self, models: Mapping[str, keras.Model], sources: Iterable[str] | None = None,
                 jit: bool = False, paths: Mapping[str, str] | None = None) -> None:
        sources = tuple(models) if sources is None else tuple(sources)
        missing = [s for s in sources if s not in models]
        if missing:
            raise MixinError(f"no model given for {', '.join(missing)}")
        super().__init__(sources)
        self.models = {s: models[s] for s in self.sources}
        self.jit = bool(jit)
        self.paths = dict(paths or {})
        self._fn = None

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike, sources: Iterable[str] = params.SOURCES,
                 jit: bool = False) -> TFBackend:
        """Load the ``.h5`` models of ``sources`` from ``model_dir`` (:func:`mixin.model.load_models`)."""
        from .model import load_models

        sources = tuple(sources)
        return cls(load_models(model_dir, sources), sources, jit=jit,
                   paths=model_files(model_dir, sources, "tf"))

    def _network_fn(self):
        """A tf.function running all networks on a batch [shape=(b, 96, 1948, 1)]."""
        if self._fn is None:
            from .model import import_tensorflow

            tf = import_tensorflow()
            models = [self.models[s] for s in self.sources]
            shape = (None,) + tuple(models[0].input_shape[1:])

            def run(x):
                return tuple(m(x, training=False) for m in models)

            sig = None if self.jit else [tf.TensorSpec(shape, tf.float32)]
            self._fn = tf.function(run, jit_compile=self.jit, input_signature=sig)
        return self._fn

    def run(self, mag: np.ndarray) -> dict[str, np.ndarray]:
        out = self._network_fn()(_nhwc(mag))
        return {s: np.asarray(o)[..., 0] for s, o in zip(self.sources, out)}


class OnnxBackend(Backend):
    """ONNX Runtime on one ``.onnx`` file per network (one inference session each).

    Parameters
    ----------
    paths : dict source -> path of a ``model_*.onnx`` (input and output [shape=(b, 96, 1948, 1)])
    threads : int or None
        Threads per session (0: ONNX Runtime's default, one per physical core; None:
        :data:`ORT_THREADS`, or else :func:`default_threads`).
    parallel : int or None
        Networks run at once (1: one after the other; None: :data:`ORT_PARALLEL`, or else
        :func:`default_parallel`). The outputs are the same numbers whatever it is.
    chunks : int or None
        Chunks per session call (a batch is run in slices of this many; None:
        :data:`ORT_CHUNKS`). The outputs are the same numbers whatever it is.
    opt_level : "disable", "basic", "extended" or "all"
        Graph optimisation level.
    arena : "shared", "session" or "off"
        Memory for the activations: one arena for every session of the process, allocating the
        sizes asked, without memory patterns (the default); ONNX Runtime's default, an arena per
        session that grows by powers of two, with memory patterns; or no arena (malloc and free
        at every call).
    spin : bool
        Let idle worker threads spin (ONNX Runtime's default) rather than sleep.

    None for ``opt_level``, ``arena`` or ``spin`` is the module's ``ORT_*`` default.

    Raises :class:`MixinError` (one line naming the file) for an unreadable file, a file of the
    wrong shape, or an ``.onnx`` whose ``.h5`` beside it is not the one it was exported from.
    """

    name = "onnx"

    def __init__(self, paths: Mapping[str, str | os.PathLike], threads: int | None = None,
                 opt_level: str | None = None, arena: str | None = None,
                 spin: bool | None = None, parallel: int | None = None,
                 chunks: int | None = None) -> None:
        import onnxruntime as ort

        # the module's defaults as they are now (not when this function was defined)
        threads = ORT_THREADS if threads is None else threads
        opt_level = ORT_OPT_LEVEL if opt_level is None else opt_level
        arena = ORT_ARENA if arena is None else arena
        spin = ORT_SPIN if spin is None else spin
        parallel = ORT_PARALLEL if parallel is None else parallel

        super().__init__(paths)
        self.paths = {s: str(p) for s, p in paths.items()}
        levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        if opt_level not in levels:
            raise MixinError(f"opt_level must be one of {', '.join(levels)}, got {opt_level!r}")
        if parallel is None:
            parallel = default_parallel(len(paths))
        if int(parallel) != parallel or parallel < 1:
            raise MixinError(f"parallel must be a positive integer, got {parallel!r}")
        if threads is None:
            threads = default_threads(min(int(parallel), len(paths)))
        if int(threads) != threads or threads < 0:
            raise MixinError(f"threads must be a non-negative integer, got {threads!r}")
        chunks = ORT_CHUNKS if chunks is None else chunks
        if int(chunks) != chunks or chunks < 1:
            raise MixinError(f"chunks must be a positive integer, got {chunks!r}")
        self.parallel = min(int(parallel), len(paths))
        self.threads = int(threads)
        self.chunks = int(chunks)
        # ONNX Runtime releases the GIL while a session runs (the pool starts its threads when used)
        self._pool = (concurrent.futures.ThreadPoolExecutor(self.parallel - 1,
                                                            thread_name_prefix="mixin-onnx")
                      if self.parallel > 1 else None)
        if arena not in ARENAS:
            raise MixinError(f"arena must be one of {', '.join(ARENAS)}, got {arena!r}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = levels[opt_level]
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        if arena == "off":
            opts.enable_cpu_mem_arena = False
        elif arena == "shared":
            if not _shared_arena:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                         ort.OrtMemType.DEFAULT)
                # max memory 0 = no limit, extend strategy 1 = kSameAsRequested, defaults
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
                _shared_arena.append(info)
            opts.add_session_config_entry("session.use_env_allocators", "1")
            opts.enable_mem_pattern = False
        self.sessions = {}
        for s, p in self.paths.items():
            self.sessions[s] = _session(ort, p, opts)
        self._names = {s: (x.get_inputs()[0].name, x.get_outputs()[0].name)
                       for s, x in self.sessions.items()}

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike, sources: Iterable[str] = params.SOURCES,
                 **options: Any) -> OnnxBackend:
        """Load the ``model_*.onnx`` files of ``sources`` from ``model_dir``."""
        return cls(model_files(model_dir, sources, "onnx"), **options)

    def _run_one(self, s: str, x: np.ndarray) -> np.ndarray:
        i, o = self._names[s]
        sess, n = self.sessions[s], self.chunks
        if len(x) <= n:
            return sess.run([o], {i: x})[0][..., 0]
        out = np.empty(x.shape[:3], np.float32)
        for a in range(0, len(x), n):
            out[a:a + n] = sess.run([o], {i: x[a:a + n]})[0][..., 0]
        return out

    def run(self, mag: np.ndarray) -> dict[str, np.ndarray]:
        x = _nhwc(mag)
        if self._pool is None:
            return {s: self._run_one(s, x) for s in self.sessions}
        names = list(self.sessions)
        # this thread runs every parallel-th network, the pool the others
        futs = {s: self._pool.submit(self._run_one, s, x)
                for j, s in enumerate(names) if j % self.parallel}
        out = {s: self._run_one(s, x) for j, s in enumerate(names) if not j % self.parallel}
        out.update((s, f.result()) for s, f in futs.items())
        return {s: out[s] for s in names}


def cpus() -> int:
    """CPUs the networks of this process may use: :data:`ORT_CPUS` when set (a ``--jobs``
    worker's share), else those of the process's CPU affinity (where the OS tells), else all."""
    if ORT_CPUS is not None:
        return max(1, int(ORT_CPUS))
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_parallel(n_networks: int = len(params.SOURCES)) -> int:
    """Networks run at once by default: one per CPU, at most ``n_networks``."""
    return max(1, min(n_networks, cpus()))


def default_threads(parallel: int = 1) -> int:
    """ONNX Runtime threads per session by default, with ``parallel`` networks at once: the CPUs
    but one (the separator computes the transforms of the next batch meanwhile) shared among
    them, at least one each."""
    return max(1, (cpus() - 1) // max(1, parallel))


def _session(ort, path, opts):
    """An inference session of ``path``, checked: MiXiN's shape, and the recorded hash of the
    ``.h5`` beside it."""
    from .model import input_shape

    if not os.path.isfile(path):
        raise MixinError(f"model file not found: {path}")
    try:
        sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise MixinError(f"cannot load model {path}: {msg[:200]}") from None
    want = tuple(input_shape())  # (rows, cols, 1); the input may have more channels
    ins, outs = sess.get_inputs(), sess.get_outputs()
    got_in = tuple(ins[0].shape[1:]) if len(ins) == 1 else None
    got_out = tuple(outs[0].shape[1:]) if len(outs) == 1 else None
    if got_in is None or got_in[:2] != want[:2] or len(got_in) != 3 or got_out != want:
        raise MixinError(f"model {path} maps {got_in} to {got_out}; MiXiN needs "
                         f"{want[:2] + ('channels',)} to {want}")
    h5 = h5_file(path)
    if os.path.isfile(h5):
        meta = sess.get_modelmeta().custom_metadata_map
        recorded = meta.get(SHA256_KEY)
        if recorded != sha256(h5):
            what = ("records no .h5 hash" if recorded is None else
                    f"was exported from another {os.path.basename(h5)} (sha256 {recorded[:12]}...)")
            raise MixinError(f"{path} {what}: export it again with train_util.py --export-onnx "
                             f"--model-dir {os.path.dirname(path) or '.'} --overwrite, or use "
                             f"--backend tf")
    return sess


def load(model_dir: str | os.PathLike, sources: Iterable[str] = params.SOURCES,
         backend: str = "auto", jit: bool = False, **options: Any) -> Backend:
    """Load the networks of ``sources`` from ``model_dir`` with ``backend`` (resolved by :func:`choose`).

    ``jit`` (XLA) is a TensorFlow option: with ``auto`` it picks ``tf``, with ``onnx`` it is refused.
    ``options`` go to :class:`OnnxBackend` (threads, opt_level, arena).
    """
    if jit:
        if backend == "onnx":
            raise MixinError("jit (XLA) applies to the tf backend only, not to onnx")
        backend = "tf" if backend == "auto" else backend
    kind = choose(backend, model_dir, sources)
    log.debug("backend %s for %s", kind, model_dir)
    if kind == "onnx":
        return OnnxBackend.from_dir(model_dir, sources, **options)
    return TFBackend.from_dir(model_dir, sources, jit=jit)
