"""Rendering training songs: multitrack stem folders made from MIDI, samples and synthesis.

:mod:`.render` (``--render-stems``) renders song folders from the Groove MIDI Dataset, recorded
drum kits and SoundFonts; :mod:`.synth` renders simpler synthetic songs (no SoundFonts or samples)
for the tests, CI and the quick start: ``python -m mixin.training.render.synth``.
"""
