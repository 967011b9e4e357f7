"""How the guard's classifiers are trained and measured out of source.

The runtime rails never import this package (a gateway loads weights, not training code), with
one exception: the known-attack index, when none is cached yet, is seeded from the injection
classifier's training positives (:func:`bastion.guard.training.data.known_attacks`, which reads
the corpora and the written sets, not the learners). ``bastion guard train`` finds its trainers
in :mod:`bastion.guard.training.tasks`.
"""
