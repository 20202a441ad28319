"""The --arch model family beside the published CDAE: builders, model.json, inputs, save/load."""

import json

import numpy as np
import pytest

from mixin import model as M
from mixin.errors import MixinError
from mixin.hpss import hpss


def conv_params(c_in, c_out, k=9):
    return k * c_in * c_out + c_out


def expected_params(arch):
    """Parameter count from the architecture's table entry (3x3 convs, 1x3 dilated, 1x1 output)."""
    spec = M.ARCHITECTURES[arch]
    w = spec["widths"]
    n = conv_params(len(spec["inputs"]), w[0]) + conv_params(w[0], w[1]) + conv_params(w[1], w[2])
    n += len(spec["dilations"]) * conv_params(w[2], w[2], k=3)
    n += conv_params(w[2], w[3]) + conv_params(w[3], w[4]) + conv_params(w[4], w[5])
    n += conv_params(w[5], w[6]) + conv_params(w[6], 1, k=1)
    return n


@pytest.mark.parametrize("arch", list(M.ARCHITECTURES))
def test_each_builder_parameter_count_and_shapes(arch):
    m = M.build_model(arch)
    n_in = len(M.ARCHITECTURES[arch]["inputs"])
    assert m.input_shape == (None, 96, 1948, n_in)
    assert m.output_shape == (None, 96, 1948, 1)
    assert m.count_params() == expected_params(arch)
    if arch == M.DEFAULT_ARCH:
        assert m.count_params() == M.N_PARAMS and len(m.layers) == M.N_LAYERS + 1
    y = m(np.random.default_rng(0).random((1, 96, 1948, n_in), dtype=np.float32)).numpy()
    assert y.shape == (1, 96, 1948, 1) and (y >= 0).all()


def test_published_flops_and_the_family_costs_more():
    # 3x3 convs at (96, 1948), (32, 390), (32, 78) x4, (32, 390), plus the 1x1 output at 96 x 1950
    # (before the crop to 1948 columns)
    flops = {a: M.model_flops(M.build_model(a)) for a in M.ARCHITECTURES}
    want = 2 * 9 * (1 * 12 * 96 * 1948 + 12 * 20 * 32 * 390 + (20 * 30 + 30 * 40 + 40 * 30 + 30 * 20) * 32 * 78
                    + 20 * 12 * 32 * 390) + 2 * 12 * 96 * 1950
    assert flops["mixin"] == want
    assert flops["mixin"] < flops["mixin-hpss"] < flops["mixin-wide"] < flops["mixin-plus"]
    assert flops["mixin"] < flops["mixin-context"]


def test_unknown_architecture_is_one_line():
    with pytest.raises(MixinError, match="unknown architecture 'unet'.*mixin-hpss"):
        M.build_model("unet")


def test_model_json_absent_means_published_and_round_trips(tmp_path):
    assert M.read_model_spec(tmp_path)["architecture"] == "mixin"
    assert M.read_model_spec(tmp_path)["inputs"] == ["mag"]
    M.write_model_spec(tmp_path, "mixin-plus")
    spec = M.read_model_spec(tmp_path)
    assert spec["architecture"] == "mixin-plus" and spec["inputs"][1:] == ["hpss_harmonic", "hpss_percussive"]
    assert spec["transform"]["n_bands"] == 96 and "hpss" in spec
    M.write_model_spec(tmp_path, "mixin-onset")
    assert M.read_model_spec(tmp_path)["onset"] == {"min_hz": 1000.0}
    rec = json.loads((tmp_path / M.MODEL_JSON).read_text())
    (tmp_path / M.MODEL_JSON).write_text(json.dumps({**rec, "onset": {"min_hz": 500.0}}))
    with pytest.raises(MixinError, match="onset settings"):
        M.read_model_spec(tmp_path)


@pytest.mark.parametrize("change, match", [
    ({"architecture": "unet"}, "unknown architecture 'unet'"),
    ({"format": "other/1"}, "not a MiXiN model record"),
    ({"inputs": ["mag"]}, "inputs"),
    ({"transform": {"n_bands": 48}}, "another transform"),
])
def test_model_json_refusals_are_one_line(tmp_path, change, match):
    rec = {**M.model_spec("mixin-hpss"), **change}
    (tmp_path / M.MODEL_JSON).write_text(json.dumps(rec))
    with pytest.raises(MixinError, match=match) as e:
        M.read_model_spec(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / M.MODEL_JSON).write_text("{not json")
    with pytest.raises(MixinError, match="cannot read"):
        M.read_model_spec(tmp_path)


def test_network_input_channels():
    mag = np.random.default_rng(1).random((2, 96, 1948), dtype=np.float32)
    x = M.network_input(mag)
    assert x.shape == (2, 96, 1948, 1) and np.array_equal(x[..., 0], mag)
    x3 = M.network_input(mag, M.ARCHITECTURES["mixin-hpss"]["inputs"])
    h, p = hpss(mag)
    assert x3.shape == (2, 96, 1948, 3)
    assert np.array_equal(x3[..., 0], mag) and np.array_equal(x3[..., 1], h) and np.array_equal(x3[..., 2], p)
    x4 = M.network_input(mag, M.ARCHITECTURES["mixin-onset"]["inputs"])
    from mixin.hpss import onset

    assert x4.shape == (2, 96, 1948, 4) and np.array_equal(x4[..., :3], x3)
    assert np.array_equal(x4[..., 3], onset(mag, p))


def test_a_model_set_round_trips_through_save_and_load(tmp_path):
    nets = {s: M.build_model("mixin-hpss", name=f"net_{s}") for s in ("harmonic", "percussive", "vocal")}
    for s, m in nets.items():
        M.save_cdae(m, tmp_path / f"model_{s}.h5")
    # without model.json the folder claims the published 1-channel input: refused, naming the file
    with pytest.raises(MixinError, match="model_harmonic.h5 maps"):
        M.load_models(tmp_path)
    M.write_model_spec(tmp_path, "mixin-hpss")
    loaded = M.load_models(tmp_path)
    x = M.network_input(np.random.default_rng(2).random((1, 96, 1948), dtype=np.float32),
                        M.ARCHITECTURES["mixin-hpss"]["inputs"])
    for s in nets:
        np.testing.assert_array_equal(loaded[s](x).numpy(), nets[s](x).numpy())


@pytest.mark.parametrize("anchor, match", [
    (1.5, "hpss_anchor must be a number from 0 to 1, got 1.5"),
    ("half", "hpss_anchor must be a number"),
    (True, "hpss_anchor must be a number"),
])
def test_hpss_anchor_is_checked(tmp_path, anchor, match):
    rec = {**M.model_spec("mixin"), "hpss": M.hpss_settings(), "hpss_anchor": anchor}
    (tmp_path / M.MODEL_JSON).write_text(json.dumps(rec))
    with pytest.raises(MixinError, match=match):
        M.read_model_spec(tmp_path)


def test_hpss_anchor_needs_and_checks_the_hpss_settings(tmp_path):
    assert M.read_model_spec(tmp_path)["hpss_anchor"] == 0.0  # absent: the published masks
    rec = {**M.model_spec("mixin"), "hpss_anchor": 0.5}
    (tmp_path / M.MODEL_JSON).write_text(json.dumps(rec))
    with pytest.raises(MixinError, match="needs the HPSS settings"):
        M.read_model_spec(tmp_path)
    rec["hpss"] = {**M.hpss_settings(), "time_median": 7}
    (tmp_path / M.MODEL_JSON).write_text(json.dumps(rec))
    with pytest.raises(MixinError, match="HPSS settings"):
        M.read_model_spec(tmp_path)
    rec["hpss"] = M.hpss_settings()
    (tmp_path / M.MODEL_JSON).write_text(json.dumps(rec))
    spec = M.read_model_spec(tmp_path)
    assert spec["hpss_anchor"] == 0.5 and spec["inputs"] == ["mag"]


def test_init_model_dir_must_hold_the_arch_trained(tmp_path):
    """--train-mix --init-model-dir fine-tunes a set of any architecture; a folder of another
    architecture is refused with one line naming both."""
    from mixin.training.engine import TrainConfig

    stems, start = tmp_path / "stems", tmp_path / "start"
    stems.mkdir()
    start.mkdir()
    M.write_model_spec(start, "mixin-hpss")

    def cfg(arch, init):
        return TrainConfig(stem_dirs=[str(stems)], validation_songs=["x"], arch=arch,
                           init_model_dir=str(init)).check()

    assert cfg("mixin-hpss", start).init_model_dir == str(start)
    with pytest.raises(MixinError, match=r"holds mixin-hpss networks, not --arch mixin's") as e:
        cfg("mixin", start)
    assert "\n" not in str(e.value)
    with pytest.raises(MixinError, match="holds mixin networks, not --arch mixin-context's"):
        cfg("mixin-context", tmp_path / "stems")  # no model.json: the published architecture
    with pytest.raises(MixinError, match="folder not found"):
        cfg("mixin", tmp_path / "nope")
