"""Separating on a Dask distributed cluster (``xtract-mixin --scheduler ADDRESS``).

Needs the ``[dask]`` extra (``pip install ".[dask]"``); :func:`mixin.separation.batch.run_dask`
imports this module and turns a missing Dask into a one-line error.

Each worker process loads the models once: :class:`SeparatorPlugin` (a ``WorkerPlugin``, also
set up on workers that join or are restarted later) builds a
:class:`~mixin.separation.separate.Separator` in ``setup``. Tasks
(:func:`mixin.separation.batch.separate_one`) read inputs and write outputs on paths every worker
sees at the same place (absolute paths, e.g. an NFS mount); the client only receives the rows
and writes the manifest. Separations in one worker process run one at a time (a lock): start
workers with ``--nthreads 1`` and as many processes (``--nworkers``) as pays on the machine.

Worker loss: the scheduler re-runs the tasks of a lost worker elsewhere (up to
``distributed.scheduler.allowed-failures`` times); an output is only ever renamed complete, and
the re-run removes the dead worker's stale part files (their lock died with it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from distributed import Client, WorkerPlugin, as_completed, get_worker

from ..errors import MixinError
from .batch import separate_one

#: Name of the plugin on the workers.
PLUGIN_NAME = "mixin-separator"


class SeparatorPlugin(WorkerPlugin):
    """Builds the worker's Separator once, from ``sep_kwargs`` (the keyword arguments of
    :class:`~mixin.separation.separate.Separator`)."""

    name = PLUGIN_NAME

    def __init__(self, sep_kwargs: Mapping):
        self.sep_kwargs = dict(sep_kwargs)
        self.sep = None
        self.lock = None

    def setup(self, worker=None):
        from .separate import Separator

        self.lock = threading.Lock()
        self.sep = Separator(**self.sep_kwargs)


def _task(task: Mapping) -> dict:
    plugin = get_worker().plugins[PLUGIN_NAME]
    with plugin.lock:
        row = separate_one(plugin.sep, task)
    row["worker"] = get_worker().address
    return row


def run(address, sep_kwargs: Mapping, tasks: Sequence[Mapping],
        on_result: Callable[[dict], object], retries: int = 2) -> None:
    """Send ``tasks`` to the cluster at ``address`` (or an existing ``Client``); call
    ``on_result(row)`` here as each finishes. A task that fails on the cluster (e.g. its workers
    kept dying) gets a failed row with the one-line reason."""
    own = not isinstance(address, Client)
    try:
        client = Client(address, timeout="30s") if own else address
    except (OSError, TimeoutError) as e:
        raise MixinError(f"--scheduler {address}: cannot connect ({' '.join(str(e).split())})") from None
    try:
        try:
            client.register_plugin(SeparatorPlugin(sep_kwargs), name=PLUGIN_NAME)
        except MixinError as e:
            raise MixinError(f"on the Dask workers: {e}") from None
        futures = {}
        for t in tasks:
            fut = client.submit(_task, t, pure=False, retries=retries)
            futures[fut] = t
        for fut in as_completed(list(futures)):
            t = futures[fut]
            try:
                row = fut.result()
            except Exception as e:  # noqa: BLE001 - every cluster failure becomes a failed row
                row = {"input": t["input"], "outputs": t["shown"], "status": "failed",
                       "seconds": 0.0, "error": f"on the cluster: {type(e).__name__}: "
                                                + " ".join(str(e).split())}
            on_result(row)
    finally:
        if own:
            client.close()
