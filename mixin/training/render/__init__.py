"""Rendering training songs: multitrack stem folders made from MIDI, samples and synthesis.

:mod:`~mixin.training.render.render` (``--render-stems``) writes song folders in the MUSDB18-HQ
layout: drums from the Groove MIDI Dataset (:mod:`~mixin.training.render.grooves`) played on
recorded kits (:mod:`~mixin.training.render.drumkits`), bass and other parts generated in the
groove's tempo (:mod:`~mixin.training.render.backing`) and played on SoundFonts through FluidSynth
(:mod:`~mixin.training.render.fluid`), each through its effects chain (:mod:`~mixin.training.render.fx`).

:mod:`~mixin.training.render.synth` renders simpler synthetic songs (no soundfonts or samples) for
the tests, CI and the quick start: ``python -m mixin.training.render.synth``.
"""
