"""The commands, each a ``main(argv=None)`` that parses its flags, checks them and calls a
pipeline: :mod:`~mixin.cli.xtract` (``xtract-mixin``, ``./xtract_mixin.py``: separation),
:mod:`~mixin.cli.train` (``mixin-train``, ``./train_util.py``: training) and
:mod:`~mixin.cli.eval` (``mixin-eval``, ``./eval_mixin.py``: evaluation) and
:mod:`~mixin.cli.serve` (``mixin-serve``: the local web app, :mod:`mixin.serve`).

``--help`` imports no TensorFlow, and ``xtract-mixin`` checks its flags, inputs and outputs before
importing it.
"""
