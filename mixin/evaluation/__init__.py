"""The evaluation pipeline (``mixin-eval``): separate songs given as stems with several systems
and score them all with BSS Eval v4.

:mod:`~mixin.evaluation.evaluate` reads the songs, runs each system (MiXiN model directories
through :mod:`mixin.separation`, and the baselines), scores the estimates against the stems and
writes the tables; :mod:`~mixin.evaluation.baselines` holds the HPSS / REPET-SIM baseline and the
oracle NSGT soft mask.
"""
