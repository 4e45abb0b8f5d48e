"""Training losses of the MDGRU heads: partial-label set loss and soft Dice (PyTorch).

A head's target is, per pixel, the set of classes its labels allow
(:func:`score_gui.mdgru.heads.targets_from_labels`); the loss rewards the probability of
that set, so partially labelled slices (cord only, GM without horns) teach what they know.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from score_gui.mdgru.heads import resolve_heads


def stack_targets(targets: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Batch per-slice targets ``[K, H, W]`` into bool tensors ``[B, K, H, W]``."""
    return {name: torch.from_numpy(np.stack([t[name] for t in targets])) for name in targets[0]}


# ---------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------

def split_logits(logits: torch.Tensor, heads=("tissue", "lesion")) -> dict[str, torch.Tensor]:
    """Split ``[B, n_outputs, H, W]`` logits into per-head ``[B, K, H, W]`` views (in order)."""
    specs = resolve_heads(heads)
    sizes = [h.n_classes for h in specs]
    if logits.shape[1] != sum(sizes):
        raise ValueError(f"logits have {logits.shape[1]} channels, heads need {sum(sizes)}")
    return dict(zip((h.name for h in specs), torch.split(logits, sizes, dim=1)))


def set_loss(logits: torch.Tensor, targets: dict[str, torch.Tensor], heads=("tissue", "lesion"),
             dice_weight: float = 0.0) -> torch.Tensor:
    """Partial-label loss: per head, mean over informative pixels of ``-log P(allowed set)``.

    ``P(allowed set) = sum of softmax probabilities over the allowed classes``. With
    one-hot targets this is the cross-entropy. Pixels where every class is allowed
    carry no information and are left out of the mean. Heads are summed.

    Parameters
    ----------
    logits : [B, n_outputs, H, W]
    targets : dict head -> bool tensor [B, K, H, W]
        From :func:`~score_gui.mdgru.heads.targets_from_labels` / :func:`stack_targets`; a
        missing head is ignored.
    dice_weight : float
        Weight ``w`` of a soft Dice term: loss = (1 - w) * set loss + w * (1 - mean Dice),
        the Dice computed on pixels whose target is a single class.

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(1, 9, 1, 1)
    >>> targets = {"tissue": torch.ones(1, 7, 1, 1, dtype=torch.bool),
    ...            "lesion": torch.tensor([True, False]).view(1, 2, 1, 1)}
    >>> round(float(set_loss(logits, targets)), 4)   # only the lesion head counts: -log(1/2)
    0.6931
    """
    total = logits.new_zeros(())
    for name, head_logits in split_logits(logits, heads).items():
        if name not in targets:
            continue
        allowed = targets[name].to(device=logits.device, dtype=torch.bool)
        log_probs = F.log_softmax(head_logits.float(), dim=1)
        log_allowed = torch.logsumexp(log_probs.masked_fill(~allowed, float("-inf")), dim=1)
        informative = ~allowed.all(dim=1) & allowed.any(dim=1)
        if not informative.any():
            continue
        set_term = -(log_allowed[informative]).mean()
        if dice_weight:
            dice = soft_dice(log_probs.exp(), allowed)
            set_term = (1.0 - dice_weight) * set_term + dice_weight * (1.0 - dice)
        total = total + set_term
    return total


def soft_dice(probs: torch.Tensor, allowed: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean soft Dice over classes and over the label sets that partial labels allow.

    Pixels whose target is one class score that class (classes absent from both target
    and prediction count as Dice 1 through ``eps``). Pixels whose target is a set of
    classes (partial labels, e.g. "GM, horns unknown" = {3, 4, 5, 6}) score the summed
    probability of the set against the pixels with that set; a class that is only ever
    part of such a set gets no Dice of its own, or the Dice would push it to zero (GM
    never predicted when only cord and GM were labelled). Pixels where every class is
    allowed carry no information and are left out.

    >>> import torch
    >>> allowed = torch.zeros(1, 3, 1, 2, dtype=torch.bool)
    >>> allowed[0, :, 0, 0] = torch.tensor([True, False, False])   # class 0
    >>> allowed[0, :, 0, 1] = torch.tensor([False, True, True])    # class 1 or 2
    >>> probs = torch.zeros(1, 3, 1, 2); probs[0, 0, 0, 0] = 1; probs[0, 2, 0, 1] = 1
    >>> round(float(soft_dice(probs, allowed)), 3)                 # both right: class 0 and set {1, 2}
    1.0
    """
    counts = allowed.sum(dim=1)
    single = (counts == 1).unsqueeze(1)
    sets = (counts > 1) & (counts < allowed.shape[1])
    in_sets = (allowed & sets.unsqueeze(1)).flatten(2).any(dim=2).any(dim=0)
    target = (allowed & single).float()
    single_probs = probs * single
    dims = (0, 2, 3)
    intersection = (single_probs * target).sum(dims)
    denominator = single_probs.sum(dims) + target.sum(dims)
    per_class = (2 * intersection + eps) / (denominator + eps)
    scores = [per_class[~in_sets | (target.sum(dims) > 0)]]
    if sets.any():
        weights = (2 ** torch.arange(allowed.shape[1], device=allowed.device)).view(1, -1, 1, 1)
        codes = torch.where(sets, (allowed.long() * weights).sum(dim=1), torch.zeros_like(counts))
        for code in torch.unique(codes[sets]):
            members = (code.item() >> torch.arange(allowed.shape[1], device=allowed.device)) & 1
            where = (codes == code).float()
            p_set = (probs * members.view(1, -1, 1, 1).to(probs.dtype)).sum(dim=1)
            inter = (p_set * where).sum()
            scores.append(((2 * inter + eps) / (p_set.sum() + where.sum() + eps)).view(1))
    return torch.cat(scores).mean()
