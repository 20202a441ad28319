"""Synthesised basses of the renderer (mixin.training.render.synthbass): pitch, spectrum, level,
ducking."""

import numpy as np
import pytest

from mixin.training.render import synthbass
from mixin.errors import MixinError

SR = 44100
ALL = synthbass.KINDS["train"] + synthbass.KINDS["heldout"]


def _peak_hz(x, lo=20.0, hi=2000.0):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    band = (f >= lo) & (f <= hi)
    return f[band][np.argmax(spec[band])]


def test_train_and_heldout_kinds_are_disjoint():
    assert synthbass.KINDS["train"] and synthbass.KINDS["heldout"]
    assert not set(synthbass.KINDS["train"]) & set(synthbass.KINDS["heldout"])


@pytest.mark.parametrize("kind", ALL)
def test_pitch_length_and_finite(kind):
    pitch = 33  # A1, 55 Hz
    y, s = synthbass.render_bass([(0.1, 1.1, pitch, 110)], 2 * SR, kind, np.random.default_rng(0))
    assert y.shape == (2, 2 * SR) and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.array_equal(y[0], y[1]) and s["kind"] == kind
    assert np.abs(y[:, :int(0.1 * SR) - 1]).max() == 0.0  # nothing before the note
    tail = int((1.1 + synthbass.RELEASE_S) * SR) + 1
    assert np.abs(y[:, tail:]).max() == 0.0  # nothing after its release
    # the fundamental is the note's (the 808's pitch drop is over after 0.2 s)
    seg = y[0, int(0.35 * SR):int(1.05 * SR)]
    assert abs(_peak_hz(seg) - 55.0) < 3.0


def test_filtered_basses_have_harmonics_and_subs_do_not():
    notes = [(0.0, 1.0, 33, 110)]
    def ratio(kind):
        y, _ = synthbass.render_bass(notes, SR, kind, np.random.default_rng(1))
        power = np.abs(np.fft.rfft(y[0, 4000:40000] * np.hanning(36000))) ** 2
        f = np.fft.rfftfreq(36000, 1 / SR)
        return power[(f > 150) & (f < 2000)].sum() / power[(f > 40) & (f < 70)].sum()
    assert ratio("sine_sub") < 1e-3
    assert ratio("saw_filter") > 0.01
    assert ratio("reese") > 0.01


def test_velocity_sets_the_level_and_seed_the_settings():
    a, sa = synthbass.render_bass([(0.0, 0.5, 40, 127)], SR, "sine_sub", np.random.default_rng(3))
    b, sb = synthbass.render_bass([(0.0, 0.5, 40, 64)], SR, "sine_sub", np.random.default_rng(3))
    assert sa == sb
    assert np.abs(b).max() / np.abs(a).max() == pytest.approx((64 / 127) ** 2, rel=1e-3)
    c, sc = synthbass.render_bass([(0.0, 0.5, 40, 127)], SR, "sine_sub", np.random.default_rng(3))
    assert np.array_equal(a, c)


def test_duck_depth_and_recovery():
    x = np.ones((2, SR), np.float32)
    y = synthbass.duck(x, SR, beat_s=0.5, depth_db=12.0, release_ms=50.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert 20 * np.log10(y[0, 0]) == pytest.approx(-12.0, abs=0.01)
    assert 20 * np.log10(y[0, SR // 2]) == pytest.approx(-12.0, abs=0.01)  # next beat
    assert y[0, int(0.45 * SR)] > 0.99  # recovered before it


def test_bad_arguments():
    with pytest.raises(MixinError, match="unknown bass kind"):
        synthbass.render_bass([(0, 1, 40, 100)], SR, "kazoo", np.random.default_rng(0))
    with pytest.raises(MixinError, match="n_samples"):
        synthbass.render_bass([(0, 1, 40, 100)], -1, "sine_sub", np.random.default_rng(0))
    with pytest.raises(MixinError, match="beat_s"):
        synthbass.duck(np.ones(10), SR, 0.0, 6.0, 50.0)
