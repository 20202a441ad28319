"""The separation pipeline: a song in, its harmonic, percussive and vocal parts out.

:mod:`mixin.separation.separate` cuts the signal into chunks (:mod:`mixin.chunks`), takes each
chunk's Bark-scale NSGT (:mod:`mixin.nsgt`), estimates the three sources' magnitudes with the CDAEs
(:mod:`mixin.model`), turns the estimates into soft masks (:mod:`mixin.masks`), inverts the masked
transforms and overlap-adds the chunks, streaming files of any length and format
(:mod:`mixin.io`). :class:`~mixin.separation.separate.Separator` is the reusable separator,
:func:`~mixin.separation.separate.xtract_mixin` the one-call form that :mod:`mixin` exports, and
:func:`~mixin.separation.separate.separate_file` the file-to-files form of ``xtract-mixin``.
"""
