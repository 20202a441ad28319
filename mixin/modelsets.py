"""Installed model sets: which networks ``xtract-mixin -n/--model NAME`` separates with.

A model set is a folder with ``model_harmonic``, ``model_percussive`` and ``model_vocal`` networks
(``.h5``, and ``.onnx`` beside them for the ONNX backend), an optional ``model.json`` (architecture
and inputs, :func:`mixin.model.read_model_spec`; absent = the published architecture) and an
optional ``training.json`` (its record and scores). The shipped sets live in the repository's
``pretrained-models/`` (installed as ``mixin/pretrained/``): the folder itself is the set
:data:`DEFAULT_SET` (the published architecture, trained by this project), and each subfolder that
holds a set is another set named after the subfolder.

Only this module knows where the shipped sets are (:func:`default_model_dir`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import params
from .errors import MixinError

#: The ``mixin`` package's folder.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

#: The default set's name: the published architecture.
DEFAULT_SET = "mixin"


def default_model_dir() -> str:
    """The directory of the shipped default set: the checkout's ``pretrained-models/`` beside the
    package (also after ``pip install -e .``), else the copy installed as ``mixin/pretrained/``,
    whichever holds a set first; the checkout's path when neither does (loading then says what is
    missing)."""
    checkout = os.path.join(os.path.dirname(_PACKAGE_DIR), "pretrained-models")
    installed = os.path.join(_PACKAGE_DIR, "pretrained")
    for d in (checkout, installed):
        if holds_set(d):
            return d
    return checkout


def holds_set(folder: str | os.PathLike) -> bool:
    """Does ``folder`` hold a model set (its harmonic network as .h5 or .onnx)?"""
    base = os.path.join(str(folder), os.path.splitext(params.MODEL_FILES["harmonic"])[0])
    return os.path.isfile(base + ".h5") or os.path.isfile(base + ".onnx")


def installed_sets() -> dict[str, str]:
    """Installed model sets: name -> folder, the default set first, then the others by name."""
    root = default_model_dir()
    sets = {DEFAULT_SET: root}
    if os.path.isdir(root):
        for sub in sorted(Path(root).iterdir()):
            if sub.is_dir() and not sub.name.startswith((".", "_")) and holds_set(sub):
                sets[sub.name] = str(sub)
    return sets


def resolve(name: str | None) -> str:
    """The folder of installed set ``name`` (None: the default set). Raises :class:`MixinError`
    naming the installed sets for an unknown name."""
    sets = installed_sets()
    if name is None:
        return sets[DEFAULT_SET]
    if name not in sets:
        raise MixinError(f"unknown model set {name!r} (installed: {', '.join(sets)}; "
                         "see --list-models, or give a folder with --pretrained-model-dir)")
    return sets[name]


def describe(folder: str | os.PathLike) -> dict[str, Any]:
    """What a set's folder says of itself: architecture (``model.json``), the networks' formats,
    and, from ``training.json`` when there is one, its scores on the held-out real songs and on the
    rendered test songs (harmonic / percussive / vocal, dB) and the credits of its training
    material (its ``credits``: a list of lines; a set without them has none)."""
    from .model import read_model_spec

    folder = Path(folder)
    spec = read_model_spec(folder)
    files = {ext: all((folder / f"model_{s}{ext}").is_file() for s in params.SOURCES)
             for ext in (".h5", ".onnx")}
    out: dict[str, Any] = {"folder": str(folder), "architecture": spec["architecture"],
                           "inputs": spec["inputs"], "hpss_anchor": spec["hpss_anchor"],
                           "formats": [e[1:] for e, ok in files.items() if ok],
                           "scores": {}, "credits": []}
    rec_path = folder / "training.json"
    if rec_path.is_file():
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise MixinError(f"cannot read {rec_path}: {str(e).splitlines()[0][:200]}") from None
        out["scores"] = _scores(rec)
        credits = rec.get("credits") if isinstance(rec, dict) else None
        if isinstance(credits, list):
            out["credits"] = [str(c) for c in credits]
    return out


def _scores(rec: dict) -> dict[str, list[float]]:
    """(harmonic, percussive, vocal) per scored set of songs, from a training record."""
    scores = {}
    val = rec.get("validation_scores", {})
    for song, systems in val.items():
        if isinstance(systems, dict) and "ours" in systems:
            scores[song] = [systems["ours"][t] for t in ("harmonic", "percussive", "vocal")]
    test = rec.get("test_scores", {}).get("rendered_test", {}).get("scores", {}).get("ours")
    if test:
        scores["rendered test"] = [test[t] for t in ("harmonic", "percussive", "vocal")]
    return scores


def format_sets() -> str:
    """The ``--list-models`` answer: one block per installed set."""
    lines = []
    for name, folder in installed_sets().items():
        d = describe(folder)
        default = " (default)" if name == DEFAULT_SET else ""
        anchor = f"; masks {d['hpss_anchor']:g} anchored to HPSS" if d["hpss_anchor"] else ""
        lines.append(f"{name}{default}: {d['architecture']} architecture, inputs "
                     f"{', '.join(d['inputs'])}{anchor}; files {', '.join(d['formats']) or 'none'}; "
                     f"{folder}")
        for where, (h, p, v) in d["scores"].items():
            lines.append(f"    {where}: harmonic {h:.2f} / percussive {p:.2f} / vocal {v:.2f} dB")
        lines.extend(f"    trained on: {c}" for c in d["credits"])
    return "\n".join(lines)
