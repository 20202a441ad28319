"""The ``mixin-serve`` command (also ``python -m mixin.cli.serve``): a local web app to separate
songs and listen to the stems side by side.

``main`` checks the flags, the model set and the work folder, binds the address (so a port in use
is one ``error:`` line), prints the address and serves until Ctrl-C. The application is
:func:`mixin.serve.app.create_app`; separation runs in one worker process (see
:mod:`mixin.serve.jobs`).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import socket
import sys
import threading

from .. import __version__
from ..errors import MixinError

log = logging.getLogger("mixin")

#: The model set shipped with MiXiN (the only named one today).
DEFAULT_MODEL = "mixin"  # mixin.modelsets.DEFAULT_SET


def default_workdir() -> str:
    """``$XDG_DATA_HOME/mixin-serve`` (``~/.local/share/mixin-serve`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "mixin-serve")


def get_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``mixin-serve``."""
    p = argparse.ArgumentParser(
        prog=prog or "mixin-serve",
        description="Start a local web app to separate songs with MiXiN and listen to the stems "
                    "side by side (waveforms, solo/mute, spectrograms, downloads). Prints the "
                    "address to open; Ctrl-C stops it.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this computer only; any other "
                        "address requires a token)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 = any free port)")
    p.add_argument("--workdir", default=None, metavar="DIR",
                   help="folder of the job database and the separated files (default: "
                        "$XDG_DATA_HOME/mixin-serve, i.e. ~/.local/share/mixin-serve)")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                   help=f"installed model set ('{DEFAULT_MODEL}', the shipped models, by default; see "
                        "xtract-mixin --list-models) or a folder "
                        "holding model_harmonic.h5, model_percussive.h5 and model_vocal.h5")
    p.add_argument("--token", default=None,
                   help="access token the page and API require (default: none on 127.0.0.1, a "
                        "random one, printed at start, on any other --host)")
    p.add_argument("--max-upload-mb", type=float, default=500, metavar="MB",
                   help="largest upload accepted, in MB (default: 500)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    p.add_argument("--version", action="version", version=f"MiXiN {__version__}")
    return p


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this computer."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def model_sets(name: str) -> tuple[dict[str, str], str]:
    """(model-set name -> folder, default name) for ``--model NAME``: the installed sets
    (:func:`mixin.modelsets.installed_sets`), plus ``NAME`` itself when it is a folder of models.
    Raises :class:`MixinError` for an unknown name, a folder without the three model files or with
    a bad ``model.json`` (the server reads each set's HPSS anchor from it)."""
    from ..model import model_paths, read_model_spec
    from ..modelsets import installed_sets, resolve

    sets = installed_sets()
    default = name
    if name not in sets:
        if not os.path.isdir(name):
            resolve(name)  # the one-line error naming the installed sets
        label = os.path.basename(os.path.normpath(os.path.abspath(name))) or name
        if label in sets:
            label = f"{label} ({name})"
        sets[label] = os.path.abspath(name)
        default = label
    for label, d in sets.items():
        for p in model_paths(d).values():
            if not os.path.isfile(p):
                where = "--model" if label == default else "model set"
                raise MixinError(f"{where} {label!r}: model file not found: {p}")
        read_model_spec(d)
    return sets, default


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise MixinError(f"--host {host!r}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise MixinError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def main(argv: list[str] | None = None) -> int:
    """Run ``mixin-serve`` with ``argv`` (default: the command line); return the exit status."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not 0 <= args.port <= 65535:
            raise MixinError(f"--port must be 0 to 65535, got {args.port}")
        if not args.max_upload_mb > 0:
            raise MixinError(f"--max-upload-mb must be positive, got {args.max_upload_mb:g}")
        if args.token is not None and len(args.token) < 8:
            raise MixinError(f"--token must have at least 8 characters, got {len(args.token)}")
        workdir = os.path.abspath(args.workdir or default_workdir())
        from .xtract import check_folder

        check_folder(workdir, "--workdir")
        sets, default = model_sets(args.model)
        loopback = is_loopback(args.host)
        token = args.token or (None if loopback else secrets.token_urlsafe(16))
        sock = _bind(args.host, args.port)
    except MixinError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        print(f"error: {e.name} is not installed for {sys.executable}: install MiXiN in this "
              "Python (pip install .)", file=sys.stderr)
        return 1

    import uvicorn

    from ..serve.app import LOOPBACK_HOSTS, create_app

    os.makedirs(workdir, exist_ok=True)
    port = sock.getsockname()[1]
    app = create_app(workdir, sets, default, args.max_upload_mb, token=token,
                     allowed_hosts=LOOPBACK_HOSTS if loopback and token is None else None)
    config = uvicorn.Config(app, log_level="info" if args.verbose else "warning",
                            access_log=args.verbose, lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    url = _url(args.host, port, token)

    def announce():
        import time

        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"MiXiN {__version__}: serving on {url}", flush=True)
            print(f"work folder: {workdir}; models: {sets[default]}", flush=True)
            if token and not args.token:
                print("the page and the API need the token in this address", flush=True)
            print("press Ctrl-C to stop", flush=True)
            if args.open:
                import webbrowser

                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
