"""Packaging: the wheel installs into a fresh venv and works from any directory, with the models.

The fresh venv borrows the big dependencies (TensorFlow, ...) of the running interpreter through a
``.pth`` file instead of downloading them again; MiXiN itself comes only from the wheel. The light
install (no extras) is checked in a venv of its own, with its dependencies from the package index.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT

pytestmark = pytest.mark.slow

#: What the wheel is built from (a copy: building in the checkout would leave build/ and
#: *.egg-info behind).
SOURCES = ("pyproject.toml", "README.md", "mixin", "pretrained-models")


def _pip(*args, **kw):
    r = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                       capture_output=True, text=True, **kw)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(p, src / name)
    out = tmp_path_factory.mktemp("wheel")
    # offline when this interpreter can build it (setuptools, with wheel for setuptools < 70.1)
    offline = importlib.util.find_spec("setuptools") and importlib.util.find_spec("wheel")
    _pip("wheel", "--no-deps", *(["--no-build-isolation"] if offline else []), "-w", str(out),
         str(src))
    (whl,) = out.glob("mixin-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    d = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d)], check=True)
    py = d / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # this interpreter's site folders (also those added by .pth files), after the venv's own
    deps = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")
            and os.path.isdir(p)]
    with open(os.path.join(purelib, "_borrowed_deps.pth"), "w") as f:
        f.write("\n".join(deps) + "\n")
    # --ignore-installed: a MiXiN installed where the dependencies are (e.g. `pip install -e .`
    # in .venv) is neither taken for this one nor uninstalled
    _pip("--python", str(py), "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel))
    return d


def test_wheel_holds_the_package_models_and_scripts(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = z.read(entry).decode()
    for s in ("harmonic", "percussive", "vocal"):
        assert f"mixin/pretrained/model_{s}.h5" in names
        assert f"mixin/pretrained/model_{s}.onnx" in names
    assert "mixin/pretrained/training.json" in names
    for sub in (ROOT / "pretrained-models").iterdir():  # every other shipped set (a subfolder)
        if sub.is_dir() and (sub / "model_harmonic.onnx").exists():
            files = {f"mixin/pretrained/{sub.name}/{f.name}" for f in sub.iterdir()
                     if f.name.startswith("model") or f.name == "training.json"}
            assert files <= names, sorted(files - names)
    assert "mixin/cli/xtract.py" in names and "mixin/separation/separate.py" in names
    # every module of the checkout: pyproject.toml lists the subpackages one by one
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mixin").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert "xtract-mixin = mixin.cli.xtract:main" in scripts
    assert "mixin-eval = mixin.cli.eval:main" in scripts
    assert "mixin-train = mixin.cli.train:main" in scripts
    assert "mixin-serve = mixin.cli.serve:main" in scripts
    static = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mixin" / "serve" / "static").iterdir()}
    assert static and static <= names, sorted(static - names)  # the page of mixin-serve
    assert wheel.stat().st_size < 5e6


def test_installed_commands_work_from_another_directory(venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(venv / "bin" / "xtract-mixin"), "--help"], cwd=tmp_path,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "--filename" in r.stdout and r.stdout.startswith("usage: xtract-mixin")
    r = subprocess.run([str(venv / "bin" / "mixin-eval"), "--help"], cwd=tmp_path,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "--songs" in r.stdout
    r = subprocess.run([str(venv / "bin" / "mixin-serve"), "--help"], cwd=tmp_path,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "--max-upload-mb" in r.stdout

    song = tmp_path / "Artist - Song" / "mixture.wav"
    song.parent.mkdir()
    rng = np.random.default_rng(0)
    sf.write(str(song), (0.2 * rng.standard_normal((3 * 44100, 2))).astype(np.float32), 44100)
    r = subprocess.run([str(venv / "bin" / "xtract-mixin"), str(song.relative_to(tmp_path)),
                        "--outdir", "out", "--filename", "{parent}/{stem}.flac"],
                       cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    installed = os.path.join(str(venv), "lib")
    models = [line.strip() for line in r.stdout.splitlines() if line.startswith("\t")]
    assert len(models) == 3 and all(m.startswith(installed) for m in models), r.stdout
    for s in ("harmonic", "percussive", "vocal"):
        info = sf.info(str(tmp_path / "out" / "Artist - Song" / f"{s}.flac"))
        assert info.frames == 3 * 44100 and info.channels == 2


def test_python_api_from_another_directory(venv, tmp_path):
    code = ("import numpy as np, mixin\n"
            "from mixin import xtract_mixin\n"
            "from mixin.separation.separate import default_model_dir\n"
            "x = 0.1 * np.random.default_rng(0).standard_normal(22050).astype(np.float32)\n"
            "h, p, v = xtract_mixin(x)\n"
            "assert h.shape == p.shape == v.shape == x.shape\n"
            "print(mixin.__file__)\n"
            "print(default_model_dir())\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    package, models = r.stdout.split()[-2:]
    assert package.startswith(str(venv)) and models == os.path.join(os.path.dirname(package),
                                                                    "pretrained")


def _index_reachable(tmp):
    """Whether pip can fetch from the package index (the light venv downloads its dependencies)."""
    r = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "download",
                        "--no-deps", "-q", "-d", str(tmp), "tqdm"], capture_output=True, text=True)
    return r.returncode == 0


def test_light_install_separates_without_tensorflow(wheel, tmp_path):
    """``pip install <clone>`` without extras: no TensorFlow, Keras, h5py or matplotlib; the shipped
    models separate (onnx backend) from another directory; an .h5-only folder and training answer
    one line naming the extra."""
    if not _index_reachable(tmp_path / "dl"):
        pytest.skip("the package index is not reachable (the light install downloads onnxruntime...)")
    venv = tmp_path / "light"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # (PYTHONPATH: the checkout)
    # the wheel pip builds from the clone, with its dependencies (no extras) from the index
    _pip("--python", str(py), "install", "-q", str(wheel), env=env)
    absent = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in "
                             "('tensorflow', 'keras', 'h5py', 'matplotlib', 'onnx') "
                             "if u.find_spec(m)])"], capture_output=True, text=True, check=True,
                            env=env)
    assert absent.stdout.strip() == "[]"

    work = tmp_path / "elsewhere"
    work.mkdir()
    sf.write(str(work / "song.wav"), 0.1 * np.random.default_rng(0).standard_normal((50000, 2)),
             44100)
    r = subprocess.run([str(venv / "bin" / "xtract-mixin"), "song.wav", "--outdir", "out"],
                       cwd=work, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "model_vocal.onnx" in r.stdout
    for s in ("harmonic", "percussive", "vocal"):
        assert sf.info(str(work / "out" / f"song_{s}.wav")).frames == 50000

    h5only = work / "h5only"
    h5only.mkdir()
    for s in ("harmonic", "percussive", "vocal"):
        shutil.copy(ROOT / "pretrained-models" / f"model_{s}.h5", h5only)
    r = subprocess.run([str(venv / "bin" / "xtract-mixin"), "song.wav", "--outdir", "out2",
                        "--pretrained-model-dir", "h5only"], cwd=work, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert 'pip install "mixin[train]"' in r.stderr
    r = subprocess.run([str(venv / "bin" / "mixin-train"), "--export-onnx", "--model-dir", "h5only"],
                       cwd=work, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert 'pip install "mixin[train]"' in r.stderr
