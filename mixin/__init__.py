"""MiXiN: Music Xtraction with Nonstationary Gabor Transforms.

Separates a song into harmonic, percussive and vocal parts with a 96-band Bark-scale NSGT and three
convolutional denoising autoencoders whose estimates become soft masks.

Importing :mod:`mixin` is cheap: TensorFlow is imported only when a model is loaded or built.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import MixinError  # noqa: E402

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing: type checkers know the name)
if TYPE_CHECKING:
    import os
    from typing import Any

    import numpy as np


def xtract_mixin(x: np.ndarray, instrumental: bool = False, single_model: bool = False,
                 pretrained_model_dir: str | os.PathLike | None = None,
                 **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Separate ``x`` [shape=(n,) or (n, channels)] into (harmonic, percussive, vocal).

    See :func:`mixin.separation.separate.xtract_mixin` (imported lazily so that ``import mixin``
    stays light).
    """
    from .separation.separate import xtract_mixin as _x

    return _x(x, instrumental=instrumental, single_model=single_model,
              pretrained_model_dir=pretrained_model_dir, **kwargs)


__all__ = ["MixinError", "xtract_mixin", "__version__"]
