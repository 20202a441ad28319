"""The training pipelines: from multitrack stems to the three networks (``mixin-train``).

The faithful path of the original MiXiN, one stage per module, each reading what the previous one
wrote (names on disk in :mod:`mixin.layout`):

    stems -> segments -> datasets -> networks -> calibrated networks
    :mod:`~mixin.training.stems` (``--prepare-stems``) cuts stem folders into training segments;
    :mod:`~mixin.training.hdf5` (``--create-hdf5``) writes their NSGT magnitudes, split by song;
    :mod:`~mixin.training.train` (``--train``) trains each CDAE on its dataset;
    :mod:`~mixin.training.calibrate` (``--calibrate``) fits the networks' output gains for the masks.

On the fly, without segments or HDF5: :mod:`~mixin.training.mixing` (``--train-mix``) mixes
examples from stem folders as they are needed and trains the three networks together, keeping
the round that separates the validation songs best. Both trainings run the one loop of
:mod:`~mixin.training.engine` over their data source (``HDF5Source``, ``MixSource``).

Rendering training songs: the subpackage :mod:`mixin.training.render` (``--render-stems``).
"""
