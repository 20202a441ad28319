"""MiXiN: Music Xtraction with Nonstationary Gabor Transforms.

Separates a song into harmonic, percussive and vocal parts with a 96-band Bark-scale NSGT and three
convolutional denoising autoencoders whose estimates become soft masks.

Importing :mod:`mixin` is cheap: TensorFlow is imported only when a model is loaded or built.
"""

__version__ = "0.1.0"

from .errors import MixinError  # noqa: E402


def xtract_mixin(x, instrumental=False, single_model=False, pretrained_model_dir=None, **kwargs):
    """Separate ``x`` into (harmonic, percussive, vocal).

    See :func:`mixin.separation.separate.xtract_mixin` (imported lazily so that ``import mixin``
    stays light).
    """
    from .separation.separate import xtract_mixin as _x

    return _x(x, instrumental=instrumental, single_model=single_model,
              pretrained_model_dir=pretrained_model_dir, **kwargs)


__all__ = ["MixinError", "xtract_mixin", "__version__"]
