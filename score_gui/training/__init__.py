"""Training MDGRU models: data from a study or the phantom, augmentation, grouped folds, loop.

* :mod:`~score_gui.training.data`: a rater's labelled slices, training crops with
  set-valued targets (partial labels), on-the-fly synthetic slices.
* :mod:`~score_gui.training.augment`: rotation, scaling, elastic, mirror, gamma,
  inversion-time contrast shifts, bias field, noise.
* :mod:`~score_gui.training.folds`: grouped k-fold (all sessions of a subject together).
* :mod:`~score_gui.training.losses`: partial-label set loss and soft Dice.
* :mod:`~score_gui.training.loop`: resumable ``train_model`` and ``cross_validate``.
"""
