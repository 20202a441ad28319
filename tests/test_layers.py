"""Imports point down only (README, Project layout): base <- building blocks <- separation <-
evaluation <- training <- commands. Every `from ... import` inside mixin/ is checked."""

import ast

from conftest import ROOT

#: Layer of each top-level name under mixin/ (higher may import lower or equal, never higher).
LAYERS = {"params": 0, "errors": 0, "pretrained": 0, "argtypes": 1, "layout": 1, "io": 1,
          "nsgt": 2, "chunks": 2, "masks": 2, "metrics": 2, "songs": 2, "hpss": 2, "model": 2,
          "backends": 2, "onnxexport": 2, "modelsets": 2, "separation": 3, "evaluation": 4,
          "training": 5, "cli": 6, "serve": 6}


def _layer(module):
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 and parts[0] == "mixin" else None


def _imports(path, text=None):
    """(line, absolute module) of every mixin import in ``path`` (or in ``text`` as if it were there)."""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])  # a/b/c.py and a/b/__init__.py: a.b
    text = path.read_text(encoding="utf-8") if text is None else text
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[:len(package) - (node.level - 1)]
            if node.module:
                yield node.lineno, ".".join(base + [node.module])
            else:
                yield from ((node.lineno, ".".join(base + [a.name])) for a in node.names)
        elif node.module and node.module.split(".")[0] == "mixin":
            yield node.lineno, node.module


def test_every_module_is_known_and_imports_point_down():
    bad, unknown = [], set()
    for path in sorted((ROOT / "mixin").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("").parts
        if rel == ("mixin", "__init__"):
            continue  # the public API on top imports what it exposes (lazily)
        if rel[1] not in LAYERS:
            unknown.add(rel[1])
            continue
        mine = LAYERS[rel[1]]
        for line, target in _imports(path):
            theirs = _layer(target)
            if theirs is not None and theirs > mine:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not unknown, f"modules without a layer in this test: {sorted(unknown)}"
    assert not bad, bad


def test_an_upward_import_is_caught():
    """The check itself: relative imports resolve to absolute modules, and one from mixin/nsgt.py
    up to the training layer is seen as such."""
    nsgt = ROOT / "mixin" / "nsgt.py"
    found = dict(_imports(nsgt, "from .training import engine\nfrom . import params\n"))
    assert found == {1: "mixin.training", 2: "mixin.params"}
    assert _layer(found[1]) > LAYERS["nsgt"] >= _layer(found[2])
    init = ROOT / "mixin" / "separation" / "__init__.py"
    assert dict(_imports(init, "from .separate import Separator\nfrom ..io import probe\n")) == {
        1: "mixin.separation.separate", 2: "mixin.io"}
