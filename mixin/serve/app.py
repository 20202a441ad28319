"""The ``mixin-serve`` web application (Starlette): the page, the job API and server-sent events.

Routes (all under the token check when a token is set):

=========================================  =====================================================
``GET /``                                  the page (``static/index.html``); ``/static/...`` its files
``GET /api/config``                        model sets (their HPSS anchors, the credits of their
                                           training material), formats, default overlap, upload
                                           limit
``GET /api/jobs``                          every job
``POST /api/jobs?name=&model=&...``        upload: the request body is the file (streamed to disk,
                                           its SHA-256 computed on the way: the job's
                                           ``input_sha256``); options ``model`` (a set, or
                                           several comma-separated: one job per set, the
                                           input hard-linked, answer ``{"jobs": [...]}``),
                                           ``instrumental``, ``overlap``, ``hpss_anchor``
                                           (empty: the set's), ``format``
``GET /api/jobs/{id}``                     one job; ``DELETE`` removes it and its files
``GET /api/events``                        server-sent events: every job change, live progress
``GET /api/jobs/{id}/peaks``               waveform peaks of the mixture and the stems
``GET /api/jobs/{id}/audio/{track}``       the mixture or a stem (``?download=1``: as a file)
``GET /api/jobs/{id}/zip``                 all stems in one zip
``GET /api/jobs/{id}/spectrogram/{stem}``  NSGT spectrogram (PNG), made on first request
=========================================  =====================================================

Requests that change something (POST, DELETE) must carry the header ``X-Mixin: 1``, which a
cross-site form cannot send (a web page elsewhere cannot post to the local server).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import zipfile

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__, params
from ..errors import MixinError
from . import jobs as J

log = logging.getLogger("mixin")

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

#: Hosts a loopback-only server answers to (guards against DNS rebinding).
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]

#: Name of the cookie that carries the token after the page was opened with ``?token=``.
TOKEN_COOKIE = "mixin_token"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def _anchor(v: str | None, default: float) -> float:
    """The ``hpss_anchor`` query parameter: a number from 0 to 1; absent or empty: ``default``."""
    if v is None or not v.strip():
        return default
    try:
        a = float(v)
    except ValueError:
        a = None
    if a is None or not 0.0 <= a <= 1.0:  # NaN fails the comparison too
        raise MixinError(f"hpss_anchor must be a number from 0 to 1, got {v!r}")
    return a


def _bool(v: str | None, what: str) -> bool:
    if v in (None, "", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on"):
        return True
    raise MixinError(f"{what} must be 0 or 1, got {v!r}")


class TokenMiddleware:
    """Refuse requests without the token (``?token=``, header ``X-Mixin-Token``, ``Authorization:
    Bearer``, or the cookie the page sets); a valid ``?token=`` sets the cookie."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if self.token is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        req = Request(scope)
        given = (req.query_params.get("token") or req.headers.get("x-mixin-token")
                 or req.headers.get("authorization", "").removeprefix("Bearer ").strip()
                 or req.cookies.get(TOKEN_COOKIE) or "")
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            resp = _error(401, "missing or wrong token: open the address mixin-serve printed")
            return await resp(scope, receive, send)
        if req.query_params.get("token"):
            async def send_cookie(message):
                if message["type"] == "http.response.start":
                    message.setdefault("headers", [])
                    message["headers"] = list(message["headers"]) + [(
                        b"set-cookie",
                        f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode())]
                await send(message)
            return await self.app(scope, receive, send_cookie)
        return await self.app(scope, receive, send)


class Server:
    """State of one app (the store, the job manager, the event listeners and the settings) and its
    route handlers."""

    def __init__(self, workdir, model_dirs, default_model, max_upload_mb):
        from ..model import read_model_spec

        # each set's own HPSS anchor (its model.json), what a job that names none is separated with
        self.set_anchors = {m: read_model_spec(d)["hpss_anchor"] for m, d in model_dirs.items()}
        self.set_credits = {m: _credits(d) for m, d in model_dirs.items()}  # shown on the page
        self.store = J.JobStore(workdir)
        self.manager = J.JobManager(self.store, model_dirs)
        self.model_dirs = model_dirs
        self.default_model = default_model
        self.max_upload = int(max_upload_mb * 1024 * 1024)
        self.max_upload_mb = max_upload_mb
        self.subscribers: set[asyncio.Queue] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.manager.listeners.append(self._broadcast)

    def _broadcast(self, event: dict) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        for q in list(self.subscribers):
            loop.call_soon_threadsafe(q.put_nowait, event)

    def job_or_404(self, job_id: str) -> dict | None:
        return self.store.get(job_id) if J.valid_job_id(job_id) else None

    def routes(self) -> list:
        """The app's routes, bound to this server."""
        return [
            Route("/", self.index),
            Route("/api/config", self.config),
            Route("/api/jobs", self.list_jobs, methods=["GET"]),
            Route("/api/jobs", self.create_job, methods=["POST"]),
            Route("/api/events", self.events),
            Route("/api/jobs/{job_id}", self.get_job, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.delete_job, methods=["DELETE"]),
            Route("/api/jobs/{job_id}/peaks", self.job_peaks),
            Route("/api/jobs/{job_id}/audio/{track}", self.job_audio),
            Route("/api/jobs/{job_id}/zip", self.job_zip),
            Route("/api/jobs/{job_id}/spectrogram/{stem}", self.job_spectrogram),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.loop = asyncio.get_running_loop()
        self.manager.start()
        try:
            yield
        finally:
            for q in list(self.subscribers):
                q.put_nowait(None)
            self.manager.stop()
            self.store.close()

    # ---------------------------------------------------------------------------- pages
    async def index(self, request):
        return FileResponse(os.path.join(STATIC_DIR, "index.html"),
                            headers={"Cache-Control": "no-store"})

    async def config(self, request):
        return JSONResponse({"version": __version__, "models": list(self.model_dirs),
                             "default_model": self.default_model, "formats": list(J.FORMATS),
                             "default_overlap": params.DEFAULT_OVERLAP,
                             "hpss_anchors": self.set_anchors, "credits": self.set_credits,
                             "max_upload_mb": self.max_upload_mb})

    # ---------------------------------------------------------------------------- jobs
    async def list_jobs(self, request):
        return JSONResponse([self.manager.public(j) for j in self.store.all()])

    async def get_job(self, request):
        job = self.job_or_404(request.path_params["job_id"])
        if job is None:
            return _error(404, "no such job")
        return JSONResponse(self.manager.public(job))

    async def delete_job(self, request):
        if request.headers.get("x-mixin") != "1":
            return _error(403, "missing header X-Mixin: 1")
        job_id = request.path_params["job_id"]
        if self.job_or_404(job_id) is None:
            return _error(404, "no such job")
        await run_in_threadpool(self.manager.delete, job_id)
        return JSONResponse({"deleted": job_id})

    def _models(self, v: str | None) -> list[str]:
        """The ``model`` query parameter: one set name or a comma-separated list of distinct
        ones (absent or empty: the default set); MixinError naming an unknown, repeated or empty
        name."""
        if v is None or not v.strip():
            return [self.default_model]
        names = [m.strip() for m in v.split(",")]
        seen = set()
        for m in names:
            if not m:
                raise MixinError(f"empty model set name in {v!r} "
                                 f"(served: {', '.join(self.model_dirs)})")
            if m not in self.model_dirs:
                raise MixinError(f"unknown model set {m!r} (served: {', '.join(self.model_dirs)})")
            if m in seen:
                raise MixinError(f"model set {m!r} named twice in {v!r}")
            seen.add(m)
        return names

    def _job_options(self, q) -> list[dict]:
        """The settings of an upload from its query parameters, one dict per model set named
        (``model`` may list several); MixinError if one is bad."""
        from ..chunks import hop_size

        models = self._models(q.get("model"))
        fmt = (q.get("format") or "wav").lower()
        if fmt not in J.FORMATS:
            raise MixinError(f"format must be one of {', '.join(J.FORMATS)}, got {fmt!r}")
        try:
            overlap = float(q.get("overlap", params.DEFAULT_OVERLAP))
        except ValueError:
            raise MixinError(f"overlap must be a number, got {q.get('overlap')!r}") from None
        hop_size(overlap)
        anchors = [_anchor(q.get("hpss_anchor"), self.set_anchors[m]) for m in models]
        instrumental = _bool(q.get("instrumental"), "instrumental")
        if not q.get("name", "").strip():
            raise MixinError("the upload has no file name (?name=)")
        return [{"model": m, "instrumental": instrumental, "overlap": overlap,
                 "hpss_anchor": a, "format": fmt} for m, a in zip(models, anchors)]

    async def create_job(self, request):
        """Upload one file for one or several model sets. The body is streamed to the first
        job's folder once (counted, hashed, checked); every other set's job gets a hard link to
        it (a copy where linking fails) in its own folder. One set: 201 with the job; several:
        201 with ``{"jobs": [job, ...]}`` in the order named."""
        if request.headers.get("x-mixin") != "1":
            return _error(403, "missing header X-Mixin: 1")
        raw_name = request.query_params.get("name", "")
        try:
            options = self._job_options(request.query_params)
        except MixinError as e:
            return _error(400, e)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_upload:
            return _error(413, f"{raw_name}: {int(length) / 2**20:.0f} MB is more than the "
                               f"upload limit of {self.max_upload_mb:g} MB (--max-upload-mb)")
        name = J.safe_filename(raw_name)
        job_ids = [J.new_job_id() for _ in options]
        job_dirs = [self.store.job_dir(i) for i in job_ids]
        in_dir = os.path.join(job_dirs[0], "input")
        os.makedirs(in_dir)
        dest = os.path.join(in_dir, name)
        part = dest + ".part"
        size = 0
        digest = hashlib.sha256()  # of the bytes as they arrive: same song <=> same digest
        ok = False
        try:
            with open(part, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_upload:
                        return _error(413, f"{raw_name}: larger than the upload limit of "
                                           f"{self.max_upload_mb:g} MB (--max-upload-mb)")
                    f.write(chunk)
                    digest.update(chunk)
            if size == 0:
                return _error(400, f"{raw_name}: empty file (0 bytes)")
            os.replace(part, dest)
            try:
                from ..io import check_input

                await run_in_threadpool(check_input, dest)
            except MixinError as e:
                msg = " ".join(str(e).split()).replace(dest, raw_name)
                return _error(400, msg)
            for d in job_dirs[1:]:
                os.makedirs(os.path.join(d, "input"))
                _link_or_copy(dest, os.path.join(d, "input", name))
            created = _now()
            jobs = []
            for i, (jid, opts) in enumerate(zip(job_ids, options)):
                # a millisecond apart: listed (by creation) in the order the sets were named
                jobs.append(self.manager.submit({
                    "id": jid, "name": name, "created": created + 1e-3 * i, **opts,
                    "size": size, "input_sha256": digest.hexdigest()}))
            ok = True
            if len(jobs) == 1:
                return JSONResponse(self.manager.public(jobs[0]), status_code=201)
            return JSONResponse({"jobs": [self.manager.public(j) for j in jobs]},
                                status_code=201)
        finally:
            if not ok:
                for d in job_dirs:
                    shutil.rmtree(d, ignore_errors=True)

    # ---------------------------------------------------------------------------- events
    async def events(self, request):
        q: asyncio.Queue = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.subscribers.add(q)
        return StreamingResponse(self._event_stream(q), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _event_stream(self, q: asyncio.Queue):
        """Server-sent events for one listener: all jobs first, then every change queued on ``q``
        (a keep-alive comment every 15 s) until a ``None`` arrives."""
        try:
            jobs = [self.manager.public(j) for j in self.store.all()]
            yield f"event: jobs\ndata: {json.dumps(jobs)}\n\n"
            while True:
                try:
                    ev = await asyncio.wait_for(q.get(), timeout=15)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if ev is None:
                    return
                yield f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n"
        finally:
            self.subscribers.discard(q)

    # ---------------------------------------------------------------------------- results
    def _finished_job(self, request):
        job = self.job_or_404(request.path_params["job_id"])
        if job is None:
            return None, _error(404, "no such job")
        if job["state"] != J.DONE:
            return None, _error(409, f"job is {job['state']}, not done")
        return job, None

    def _track_path(self, job, track):
        """The file of a finished job's track ("mixture" or a source), or None."""
        if track == "mixture":
            return self.store.input_path(job)
        return self.store.output_paths(job).get(track)

    async def job_peaks(self, request):
        job, err = self._finished_job(request)
        if err:
            return err
        return FileResponse(self.store.peaks_path(job), media_type="application/json")

    async def job_audio(self, request):
        job, err = self._finished_job(request)
        if err:
            return err
        track = request.path_params["track"]
        path = self._track_path(job, track)
        if path is None:
            return _error(404, f"no track {track!r} in this job")
        name = os.path.basename(path)
        if request.query_params.get("download"):
            return FileResponse(path, filename=name)
        return FileResponse(path)

    async def job_zip(self, request):
        job, err = self._finished_job(request)
        if err:
            return err
        outs = self.store.output_paths(job)
        zpath = os.path.join(self.store.job_dir(job["id"]), "stems.zip")
        if not os.path.isfile(zpath):
            await run_in_threadpool(_write_zip, zpath, list(outs.values()))
        base = os.path.splitext(job["name"])[0]
        return FileResponse(zpath, filename=f"{base}_stems.zip", media_type="application/zip")

    async def job_spectrogram(self, request):
        job, err = self._finished_job(request)
        if err:
            return err
        stem = request.path_params["stem"].removesuffix(".png")
        src = self._track_path(job, stem)
        if src is None:
            return _error(404, f"no track {stem!r} in this job")
        png = os.path.join(self.store.job_dir(job["id"]), f"spec_{stem}.png")
        if not os.path.isfile(png):
            try:
                await run_in_threadpool(_write_spectrogram, src, png)
            except MixinError as e:
                return _error(400, e)
        return FileResponse(png, media_type="image/png")


def create_app(workdir: str | os.PathLike, model_dirs: dict[str, str] | None = None,
               default_model: str = "mixin", max_upload_mb: float = 500,
               token: str | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The application.

    Parameters
    ----------
    workdir : folder of the SQLite store and the job folders (created if missing)
    model_dirs : dict model-set name -> model folder (default: the installed sets)
        (each folder's ``model.json`` is read for the set's HPSS anchor: MixinError if bad)
    default_model : the model set of a job that names none
    max_upload_mb : largest upload accepted (MB)
    token : when set, every request must carry it (see :class:`TokenMiddleware`)
    allowed_hosts : Host header values accepted (None: any); a loopback-only server passes
        :data:`LOOPBACK_HOSTS` so that a DNS-rebinding page cannot reach it
    """
    if model_dirs is None:
        from ..modelsets import installed_sets

        model_dirs = installed_sets()
    if default_model not in model_dirs:
        raise MixinError(f"default model set {default_model!r} is not in {sorted(model_dirs)}")
    srv = Server(workdir, model_dirs, default_model, max_upload_mb)
    middleware = [Middleware(TokenMiddleware, token=token)]
    if allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=srv.routes(), middleware=middleware, lifespan=srv.lifespan)
    app.state.server = srv
    return app


def _credits(folder) -> list[str]:
    """The credits of a set's training material (its ``training.json``), [] when it has none or
    they cannot be read (a set without a record still serves)."""
    from ..modelsets import describe

    try:
        return describe(folder)["credits"]
    except MixinError:
        return []


def _now() -> float:
    import time

    return time.time()


def _link_or_copy(src: str, dst: str) -> None:
    """``dst`` as a hard link to ``src`` (no second copy on disk; deleting one leaves the other);
    a copy where the file system refuses links."""
    try:
        os.link(src, dst)
    except OSError as e:
        log.info("hard link %s -> %s failed (%s): copying", src, dst, e)
        shutil.copyfile(src, dst)


def _write_zip(zpath: str, files: list[str]) -> None:
    """All stems in one zip (stored: audio does not compress), written atomically."""
    from ..io import atomic_path

    with atomic_path(zpath) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for f in files:
                z.write(f, arcname=os.path.basename(f))


def _write_spectrogram(src: str, png: str) -> None:
    from ..io import decoded, write_bytes
    from .render import spectrogram_png

    with decoded(src) as s:
        write_bytes(png, spectrogram_png(s))
