"""The inference backends (mixin.backends) and the ONNX exporter (mixin.onnxexport).

ONNX against Keras on random magnitudes for every shipped network, the original's weights and the
builders' architectures; the shipped .onnx files are exactly the exporter's output; the backend
choice (auto, hidden runtimes, missing or stale files: one line each); separation outputs of both
backends; and that the onnx path imports no TensorFlow, Keras, h5py or matplotlib.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT
from mixin import backends, params
from mixin.errors import MixinError

SHIPPED = ROOT / "pretrained-models"
#: ONNX vs Keras on the same float32 input: different summation orders only.
TOL = 1e-5


def _magnitudes(b=3, seed=0):
    """Random NSGT-like magnitudes [shape=(b, 96, 1948)]: heavy-tailed, non-negative."""
    rng = np.random.default_rng(seed)
    return (np.abs(rng.standard_normal((b, 96, 1948))) ** 3).astype(np.float32)


def _compare_dir(model_dir, tmp_path):
    """Export every network of ``model_dir`` into tmp_path, run both backends; max abs diff."""
    from mixin.onnxexport import export_dir

    for s in params.SOURCES:
        shutil.copy(model_dir / f"model_{s}.h5", tmp_path)
    written = export_dir(tmp_path)
    assert len(written) == 3
    x = _magnitudes()
    a = backends.OnnxBackend.from_dir(tmp_path).run(x)
    b = backends.TFBackend.from_dir(tmp_path).run(x)
    diffs = {}
    for s in params.SOURCES:
        assert a[s].shape == x.shape and a[s].dtype == np.float32
        peak = float(np.abs(b[s]).max())
        assert peak > 1e-3, f"{s}: the network outputs ~0, the comparison says nothing"
        # relative to the output's scale (1 at least): float32 rounding in another order
        diffs[s] = float(np.abs(a[s] - b[s]).max()) / max(1.0, peak)
    print("max |onnx - keras| / max(1, max |keras|):", diffs)
    return diffs, tmp_path


def test_shipped_networks_export_exactly_and_match_keras(tmp_path):
    diffs, out = _compare_dir(SHIPPED, tmp_path)
    assert max(diffs.values()) < TOL, diffs
    for s in params.SOURCES:
        # the committed files are the exporter's output for the committed .h5 files
        assert (out / f"model_{s}.onnx").read_bytes() == (SHIPPED / f"model_{s}.onnx").read_bytes(), s


def test_original_networks_export_and_match_keras(original_models, tmp_path):
    diffs, _ = _compare_dir(original_models, tmp_path)
    assert max(diffs.values()) < TOL, diffs


def _run_both(model, x):
    import onnxruntime as ort

    from mixin.onnxexport import keras_to_onnx

    sess = ort.InferenceSession(keras_to_onnx(model).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"magnitude": x})[0], np.asarray(model(x))


@pytest.mark.parametrize("shape", [None, (20, 37, 1), (7, 3, 1)])
def test_builder_architecture_exports_for_any_size(shape):
    import keras

    from mixin.model import build_cdae

    keras.utils.set_random_seed(3)
    model = build_cdae(shape)
    x = np.abs(np.random.default_rng(1).standard_normal((2,) + model.input_shape[1:])).astype(np.float32)
    a, b = _run_both(model, x)
    assert a.shape == b.shape == x.shape
    assert np.abs(a - b).max() < TOL * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("pool,strides", [((3, 5), None), ((2, 2), (1, 1)), ((3, 3), (2, 2))])
def test_layer_settings_match_keras_on_signed_inputs(padding, pool, strides):
    """Pooling first, on negative numbers: 'same' padding must not pool zeros in (TensorFlow pads
    with -inf); strides, dilation, cropping and upsampling settings beyond the CDAE's, pointwise
    layers after upsamplings, and an upsampling last."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((13, 17, 2)),
        layers.MaxPooling2D(pool, strides=strides, padding=padding),
        layers.Conv2D(3, (2, 3), strides=(2, 1), padding=padding, activation="relu"),
        layers.Conv2D(2, 3, dilation_rate=2, padding="same"),
        layers.ReLU(),
        layers.UpSampling2D((2, 3)),
        layers.Activation("linear"),
        layers.UpSampling2D((1, 2)),
        layers.Conv2D(2, 1, activation="relu"),  # pointwise: exported before the upsamplings
        layers.ReLU(),
        layers.Cropping2D(((1, 0), (0, 2))),
        layers.UpSampling2D(2)])
    x = np.random.default_rng(2).standard_normal((3, 13, 17, 2)).astype(np.float32) - 1.0
    a, b = _run_both(model, x)
    assert a.shape == b.shape
    assert np.abs(a - b).max() < TOL


@pytest.mark.parametrize("layer,named", [
    ("Dense", "type Dense is not supported"),
    ("BatchNormalization", "type BatchNormalization is not supported"),
    ("sigmoid", "activation 'sigmoid'"),
    ("bilinear", "interpolation 'bilinear'"),
    ("leaky", "plain ReLU"),
])
def test_unsupported_layers_are_refused_by_name(layer, named):
    import keras
    from keras import layers

    from mixin.onnxexport import keras_to_onnx

    extra = {"Dense": layers.Dense(1), "BatchNormalization": layers.BatchNormalization(),
             "sigmoid": layers.Conv2D(1, 1, activation="sigmoid"),
             "bilinear": layers.UpSampling2D(2, interpolation="bilinear"),
             "leaky": layers.ReLU(negative_slope=0.1)}[layer]
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(1, 3, padding="same"), extra])
    with pytest.raises(MixinError, match=named) as e:
        keras_to_onnx(model)
    assert "\n" not in str(e.value)


def test_export_skips_up_to_date_and_refuses_others_without_overwrite(random_models, tmp_path):
    from mixin.onnxexport import export_dir, recorded_hash

    for s in params.SOURCES:
        shutil.copy(random_models / f"model_{s}.h5", tmp_path)
    assert len(export_dir(tmp_path)) == 3
    for s in params.SOURCES:
        assert recorded_hash(tmp_path / f"model_{s}.onnx") == backends.sha256(tmp_path / f"model_{s}.h5")
    mtime = os.stat(tmp_path / "model_vocal.onnx").st_mtime_ns
    assert export_dir(tmp_path) == []  # up to date: nothing rewritten
    assert os.stat(tmp_path / "model_vocal.onnx").st_mtime_ns == mtime
    shutil.copy(SHIPPED / "model_vocal.h5", tmp_path)  # another .h5: the .onnx is stale
    with pytest.raises(MixinError, match="use --overwrite"):
        export_dir(tmp_path)
    assert len(export_dir(tmp_path, overwrite=True)) == 3  # --overwrite: all written again
    assert (tmp_path / "model_vocal.onnx").read_bytes() == (SHIPPED / "model_vocal.onnx").read_bytes()


def test_train_util_export_onnx(tiny_models, tmp_path, capsys):
    import train_util

    for s in params.SOURCES:
        shutil.copy(tiny_models / f"model_{s}.h5", tmp_path)
    assert train_util.main(["--export-onnx", "--model-dir", str(tmp_path), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == [f"model_{s}.onnx" for s in params.SOURCES]
    assert backends.choose("auto", tmp_path) == "onnx"
    assert train_util.main(["--export-onnx", "--model-dir", str(tmp_path / "none"), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: model directory not found")


# ------------------------------------------------------------------------------------------------
# Choosing the backend
# ------------------------------------------------------------------------------------------------

def _copy(src, dst, exts):
    dst.mkdir(exist_ok=True)
    for s in params.SOURCES:
        for e in exts:
            shutil.copy(src / f"model_{s}{e}", dst)
    return dst


def test_auto_prefers_onnx_and_falls_back_to_tf(tmp_path, tiny_models, monkeypatch):
    assert backends.choose("auto", SHIPPED) == "onnx"
    assert backends.choose("tf", SHIPPED) == "tf"
    assert backends.choose("auto", tiny_models) == "tf"  # no .onnx files
    only_onnx = _copy(SHIPPED, tmp_path / "onnx-only", [".onnx"])
    assert backends.choose("auto", only_onnx) == "onnx"
    with pytest.raises(MixinError, match="model_harmonic.h5"):
        backends.choose("tf", only_onnx)
    real = backends.installed
    monkeypatch.setattr(backends, "installed", lambda m: m != "onnxruntime" and real(m))
    assert backends.choose("auto", SHIPPED) == "tf"  # onnxruntime hidden: the .h5 files
    with pytest.raises(MixinError, match="pip install onnxruntime"):
        backends.choose("onnx", SHIPPED)
    with pytest.raises(MixinError, match="backend must be one of auto, onnx, tf, got 'torch'"):
        backends.choose("torch", SHIPPED)


def test_onnx_without_h5_beside_is_used_as_it_is(tmp_path):
    from mixin.separation.separate import Separator

    sep = Separator(_copy(SHIPPED, tmp_path / "m", [".onnx"]))
    assert sep.backend.name == "onnx" and sep.models is None
    out = sep.separate(0.1 * np.ones(1000, np.float32))
    assert set(out) == set(params.SOURCES)


def test_separator_backends_agree(tmp_path):
    """On a synthetic song (drums, bass, chords, voice). On white noise whose last chunk is mostly
    zero padding the largest difference reached 1.0e-5: where all three estimates are near zero
    the soft masks E^2 / (sum E^2 + 1e-7) magnify the networks' 2e-7 differences."""
    from mixin.separation.separate import Separator
    from mixin.training.render.synth import make_song

    stems = make_song(4.0, sr=params.SAMPLE_RATE, seed=3, channels=2)
    x = sum(stems.values()).astype(np.float32)
    x *= 0.9 / np.abs(x).max()
    a = Separator(SHIPPED, backend="onnx")
    b = Separator(SHIPPED, backend="tf")
    assert (a.backend.name, b.backend.name) == ("onnx", "tf")
    ya, yb = a.separate(x), b.separate(x)
    diff = max(float(np.abs(ya[s] - yb[s]).max()) for s in params.SOURCES)
    print(f"max |onnx - tf| of the separated outputs: {diff:.2e}")
    assert diff < TOL
    with pytest.raises(MixinError, match="tf backend only"):
        Separator(SHIPPED, backend="onnx", jit=True)


def _xtract(capsys, *argv):
    from mixin.cli.xtract import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    p = tmp_path_factory.mktemp("song") / "song.wav"
    sf.write(str(p), 0.1 * np.random.default_rng(0).standard_normal((30000, 2)), params.SAMPLE_RATE)
    return p


def test_backend_onnx_on_an_h5_only_folder_is_one_line(capsys, tiny_models, song, tmp_path):
    code, out, err = _xtract(capsys, song, "--outdir", tmp_path, "--backend", "onnx",
                             "--pretrained-model-dir", tiny_models)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: model file not found: {tiny_models / 'model_harmonic.onnx'}")
    assert "--export-onnx" in err
    assert list(tmp_path.iterdir()) == []


def test_stale_onnx_is_refused_in_one_line(capsys, tiny_models, song, tmp_path):
    models = _copy(SHIPPED, tmp_path / "m", [".onnx", ".h5"])
    shutil.copy(tiny_models / "model_percussive.h5", models)  # a retrained .h5, the old .onnx
    out = tmp_path / "out"
    code, _, err = _xtract(capsys, song, "--outdir", out, "--pretrained-model-dir", models)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: {models / 'model_percussive.onnx'} was exported from another "
                          "model_percussive.h5")
    assert not out.exists()
    # the tf backend reads the .h5 files only
    code, _, err = _xtract(capsys, song, "--outdir", out, "--pretrained-model-dir", models,
                           "--backend", "tf", "-q")
    assert code == 0, err


def _python(code, *args, cwd=None):
    """Run ``code`` in a fresh interpreter (PYTHONPATH: this checkout)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd)


#: Makes the named modules unimportable (as if not installed), then runs argv[1:] as xtract-mixin.
BLOCK = """
import sys
for m in {blocked!r}:
    sys.modules[m] = None
{body}
"""
HEAVY = ("tensorflow", "keras", "h5py", "matplotlib")


def test_onnx_separation_imports_no_tensorflow(song, tmp_path):
    body = """
import mixin, numpy as np
from mixin.cli.xtract import main
from mixin.separation.separate import Separator
code = main(sys.argv[1:])
h, p, v = mixin.xtract_mixin(np.zeros(5000, np.float32))
Separator(backend="onnx").separate(np.zeros((3000, 2), np.float32))
print(code, sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))
"""
    r = _python(BLOCK.format(blocked=(), body=body.format(heavy=HEAVY)), song, "--outdir",
                tmp_path, "--backend", "onnx", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[-2] == "0 []", r.stdout


def test_without_tensorflow_h5_folders_and_training_name_the_extra(tiny_models, song, tmp_path):
    body = """
from mixin.cli.xtract import main
code = main(sys.argv[1:])
import train_util
code2 = train_util.main(["--export-onnx", "--model-dir", sys.argv[-1]])
print(code, code2)
"""
    r = _python(BLOCK.format(blocked=HEAVY + ("onnx",), body=body), song, "--outdir", tmp_path,
                "--pretrained-model-dir", tiny_models, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "1"]
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith(f"error: the .h5 models in {tiny_models} need TensorFlow")
    assert lines[0].endswith('pip install "mixin[train]" (or export them to .onnx where it is '
                             "installed: train_util.py --export-onnx)")
    assert lines[1] == ('error: --export-onnx needs tensorflow, keras, h5py, onnx, not installed: '
                        'pip install "mixin[train]"')
    # the shipped models still separate (onnx), with onnxruntime present
    r = _python(BLOCK.format(blocked=HEAVY, body="from mixin.cli.xtract import main\n"
                                                 "sys.exit(main(sys.argv[1:]))"),
                song, "--outdir", tmp_path / "shipped", "-q")
    assert r.returncode == 0, r.stderr


def test_auto_without_onnxruntime_uses_tensorflow(song, tmp_path):
    body = """
from mixin.separation.separate import Separator
print(Separator().backend.name)
from mixin.cli.xtract import main
sys.exit(main(sys.argv[1:]))
"""
    r = _python(BLOCK.format(blocked=("onnxruntime",), body=body), song, "--outdir", tmp_path,
                "--backend", "onnx")
    assert r.returncode == 1 and r.stdout.split("\n")[0] == "tf"
    assert r.stderr == ("error: the onnx backend needs ONNX Runtime, which is not installed: "
                        "pip install onnxruntime\n")


def test_light_dependencies_and_train_extra_make_requirements_txt():
    """pyproject.toml: separation needs no TensorFlow; the [train] extra adds it; together they
    are requirements.txt (which the scripts of a clone use), and [dev] includes [train]."""
    import re

    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs):
        return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in reqs}

    light = names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert light == {"numpy", "scipy", "soundfile", "soxr", "onnxruntime", "tqdm", "starlette", "uvicorn"}
    assert {"tensorflow", "tensorflow-cpu", "keras", "h5py", "matplotlib", "onnx"} <= names(extras["train"])
    assert "mixin" in names(extras["dev"]) and any("train" in r for r in extras["dev"])
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    assert names(ln for ln in lines if ln) == light | names(extras["train"])


@pytest.mark.parametrize("channels", [1, 2])
def test_pipeline_gives_the_same_samples_and_progress(random_models, channels):
    """Two batches in flight (the default) or one after the other: the same output, bit for bit,
    the same progress, the same blocks; errors of the worker come out of stream()."""
    from mixin.separation.separate import Separator

    rng = np.random.default_rng(6)
    x = 0.3 * rng.standard_normal((params.CHUNK_SIZE * 5 + 777, channels)).astype(np.float32)
    runs = {}
    for pipeline in (True, False):
        sep = Separator(random_models, batch_size=2, pipeline=pipeline)
        steps, blocks = [], []
        for out in sep.stream((x[i:i + 30000] for i in range(0, len(x), 30000)), channels,
                              progress=steps.append):
            blocks.append({s: o.copy() for s, o in out.items()})
        runs[pipeline] = (steps, blocks)
    assert runs[True][0] == runs[False][0]
    assert [len(b["vocal"]) for b in runs[True][1]] == [len(b["vocal"]) for b in runs[False][1]]
    for a, b in zip(runs[True][1], runs[False][1]):
        for s in params.SOURCES:
            np.testing.assert_array_equal(a[s], b[s])
    assert sum(len(b["vocal"]) for b in runs[True][1]) == len(x)

    sep = Separator(random_models, batch_size=2)

    def broken(mag):
        raise MixinError("network failed")

    sep.backend.run = broken
    with pytest.raises(MixinError, match="network failed"):
        list(sep.stream([x], channels))


def test_networks_with_several_input_channels(tmp_path):
    """Networks fed more than the magnitude (e.g. HPSS channels) run on [shape=(b, 96, 1948, c)]."""
    import keras
    import onnx

    from mixin.model import input_shape
    from mixin.onnxexport import keras_to_onnx

    rows, cols, _ = input_shape()
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((rows, cols, 3)),
                              keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                              keras.layers.Conv2D(1, 1, activation="relu")])
    onnx.save(keras_to_onnx(model), str(tmp_path / "model_vocal.onnx"))
    x = np.abs(np.random.default_rng(8).standard_normal((2, rows, cols, 3))).astype(np.float32)
    for b in (backends.OnnxBackend({"vocal": tmp_path / "model_vocal.onnx"}),
              backends.TFBackend({"vocal": model})):
        out = b.run(x)["vocal"]
        assert out.shape == (2, rows, cols)
        np.testing.assert_allclose(out, np.asarray(model(x))[..., 0], atol=1e-5)
    onnx.save(keras_to_onnx(keras.Sequential([keras.Input((rows, 8, 1)), keras.layers.ReLU()])),
              str(tmp_path / "model_harmonic.onnx"))
    with pytest.raises(MixinError, match=r"maps \(96, 8, 1\) to \(96, 8, 1\); MiXiN needs"):
        backends.OnnxBackend({"harmonic": tmp_path / "model_harmonic.onnx"})


def test_export_of_a_three_channel_h5_and_a_wrong_shape(tmp_path):
    import keras

    from mixin.model import input_shape, save_cdae
    from mixin.onnxexport import export_onnx

    rows, cols, _ = input_shape()
    keras.utils.set_random_seed(9)
    save_cdae(keras.Sequential([keras.Input((rows, cols, 3)), keras.layers.Conv2D(1, 3, padding="same")]),
              tmp_path / "model_vocal.h5")
    path, written = export_onnx(tmp_path / "model_vocal.h5")
    assert written and backends.OnnxBackend({"vocal": path}).run(
        np.ones((1, rows, cols, 3), np.float32))["vocal"].shape == (1, rows, cols)
    save_cdae(keras.Sequential([keras.Input((rows, 8, 1)), keras.layers.ReLU()]), tmp_path / "model_bad.h5")
    with pytest.raises(MixinError, match="model_bad.h5 maps"):
        export_onnx(tmp_path / "model_bad.h5")


def test_networks_at_once_and_in_slices_give_the_same_numbers():
    """The onnx backend's networks at once on a thread pool, a batch in slices of a chunk or two:
    bit for bit the numbers of one network after the other on the whole batch; errors of a
    pooled network come out of run()."""
    x = _magnitudes(b=5, seed=3)
    ref = backends.OnnxBackend.from_dir(SHIPPED, parallel=1, chunks=8).run(x)
    for parallel, chunks in ((3, 1), (2, 2), (1, 3)):
        b = backends.OnnxBackend.from_dir(SHIPPED, parallel=parallel, chunks=chunks)
        assert (b.parallel, b.chunks) == (parallel, chunks)
        out = b.run(x)
        assert list(out) == list(ref)
        for s in params.SOURCES:
            assert out[s].shape == (5, 96, 1948) and out[s].dtype == np.float32
            np.testing.assert_array_equal(out[s], ref[s])
    b = backends.OnnxBackend.from_dir(SHIPPED, parallel=3)

    class Broken:
        def run(self, *args):
            raise MixinError("network failed")

    b.sessions["percussive"] = Broken()  # the second network, run by the pool
    with pytest.raises(MixinError, match="network failed"):
        b.run(x)


def test_onnx_defaults_are_read_when_a_backend_is_made(monkeypatch):
    """ORT_* set after import apply to the backends made afterwards; the CPUs decide the rest."""
    monkeypatch.setattr(backends, "ORT_CPUS", 1)
    b = backends.OnnxBackend.from_dir(SHIPPED)
    assert (b.parallel, b.threads, b.chunks) == (1, 1, backends.ORT_CHUNKS)
    monkeypatch.setattr(backends, "ORT_CPUS", 8)
    b = backends.OnnxBackend.from_dir(SHIPPED)
    assert (b.parallel, b.threads) == (3, 2)  # 3 networks at once, 7 CPUs shared
    assert backends.OnnxBackend.from_dir(SHIPPED, ("vocal",)).parallel == 1
    monkeypatch.setattr(backends, "ORT_THREADS", 3)
    monkeypatch.setattr(backends, "ORT_PARALLEL", 2)
    monkeypatch.setattr(backends, "ORT_CHUNKS", 4)
    b = backends.OnnxBackend.from_dir(SHIPPED)
    assert (b.parallel, b.threads, b.chunks) == (2, 3, 4)
    for bad in ({"parallel": 0}, {"chunks": 0}, {"chunks": 1.5}, {"threads": -1}):
        with pytest.raises(MixinError, match=next(iter(bad))):
            backends.OnnxBackend.from_dir(SHIPPED, **bad)
