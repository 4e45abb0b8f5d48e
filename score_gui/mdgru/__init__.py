"""MDGRU segmentation model: network, output heads, checkpoints and preprocessing.

* :mod:`~score_gui.mdgru.model`: the PyTorch network (:class:`CGRU`, :class:`MDGRULayer`,
  :class:`MDGRUNet`, :data:`DEFAULT_ARCHITECTURE`), for training and CUDA.
* :mod:`~score_gui.mdgru.numpy_net`: the same network's inference pass in numpy (the CPU).
* :mod:`~score_gui.mdgru.heads`: heads, partial-label targets, labels from probabilities.
* :mod:`~score_gui.mdgru.checkpoint`: ``save_model`` / ``load_network`` / ``load_model`` with metadata.
* :mod:`~score_gui.mdgru.ptfile`: reading checkpoint files without PyTorch.
* :mod:`~score_gui.mdgru.preprocess`: resampling, normalisation, crops, canal localisation.

Nothing is imported here, so that inference on the CPU never imports PyTorch (2-3 s).
The losses are training code: :mod:`score_gui.training.losses`.
"""
