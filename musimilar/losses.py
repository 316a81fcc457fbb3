"""Contrastive losses over projections of two views: pure functions, computed in float32 (or float64 if given).

`z1[i]` and `z2[i]` are two views of sample i. Similarities are cosine similarities divided by the temperature.

`anchors` (a slice of the samples, default all) picks whose rows of the loss are computed, against every sample
as a column: a process of a distributed run computes the rows of its own samples against the global batch.
The result is the mean over the anchors' rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_NAMES: tuple[str, ...] = ("ntxent", "infonce", "supcon")
EVERY_SAMPLE = slice(None)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision projections (autocast) are lifted to float32 so the softmax neither overflows nor loses mass."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _cosine_logits(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine similarity of every row of `a` [N, D] with every row of `b` [M, D], over the temperature: [N, M]."""
    a = F.normalize(_at_least_float32(a), dim=1)
    b = F.normalize(_at_least_float32(b), dim=1)
    return a @ b.T / temperature


def _anchor_views(size: int, anchors: slice, device: torch.device) -> torch.Tensor:
    """Indices into the 2B views (z1 then z2) of the anchors' two views: [2A]."""
    samples = torch.arange(size, device=device)[anchors]  # [A]
    return torch.cat([samples, samples + size])


def _all_views(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, anchors: slice
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of the anchors' views against all 2B views with self-similarity pushed out of every softmax,
    the self mask, and the anchors' view indices.

    The fill is the dtype's most negative finite value rather than -inf, so exp gives 0 and nothing becomes NaN.
    """
    views = torch.cat([z1, z2])  # [2B, D]
    rows = _anchor_views(len(z1), anchors, views.device)  # [2A]
    logits = _cosine_logits(views[rows], views, temperature)  # [2A, 2B]
    itself = rows[:, None] == torch.arange(len(views), device=views.device)[None, :]  # [2A, 2B]
    return logits.masked_fill(itself, torch.finfo(logits.dtype).min), itself, rows


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, anchors: slice = EVERY_SAMPLE) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2B views must pick its pair among the other 2B - 1 views; mean over anchors."""
    logits, _, rows = _all_views(z1, z2, temperature, anchors)  # [2A, 2B]
    pairs = (rows + len(z1)) % (2 * len(z1))  # view i's pair is i ± B
    return F.cross_entropy(logits, pairs)


def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float, anchors: slice = EVERY_SAMPLE) -> torch.Tensor:
    """One-directional InfoNCE: query i must pick key i among all B keys; mean over queries."""
    logits = _cosine_logits(query[anchors], key, temperature)  # [A, B]
    return F.cross_entropy(logits, torch.arange(len(query), device=logits.device)[anchors])


def supcon(
    z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, temperature: float, anchors: slice = EVERY_SAMPLE
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) over the 2B views; `labels` [B] hold for both views.

    Each anchor averages the log-probability of all its positives (same label, itself excluded); with two views
    every anchor has at least its pair.
    """
    logits, itself, rows = _all_views(z1, z2, temperature, anchors)  # [2A, 2B]
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)  # [2A, 2B]
    view_labels = torch.cat([labels, labels])  # [2B]
    positive = (view_labels[rows][:, None] == view_labels[None, :]) & ~itself  # [2A, 2B]
    # where(), not a product: the masked self entries hold a huge negative that 0 * x would not cancel safely.
    positive_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)  # [2A]
    return -(positive_log_prob / positive.sum(dim=1)).mean()


def multi_view_supcon(
    z: torch.Tensor, labels: torch.Tensor, temperature: float, anchors: torch.Tensor | None = None
) -> torch.Tensor:
    """Supervised contrastive loss over any number of views `z` [M, D] with their `labels` [M]: every other view
    of the same label is a positive. Several crops of one track labelled by the track is multi-crop training
    without human labels; with two views and distinct labels it is NT-Xent. `anchors` (row indices, default all)
    are the rows whose terms are averaged, each against all M views: one process's share of a global batch."""
    every = torch.arange(len(z), device=z.device)
    rows = every if anchors is None else anchors
    logits = _cosine_logits(z[rows], z, temperature)  # [A, M]
    itself = rows[:, None] == every[None, :]  # [A, M]
    logits = logits.masked_fill(itself, torch.finfo(logits.dtype).min)
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)  # [A, M]
    positive = (labels[rows][:, None] == labels[None, :]) & ~itself  # [A, M]
    positive_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)  # [A]
    return -(positive_log_prob / positive.sum(dim=1).clamp(min=1)).mean()


def contrastive_loss(
    name: str,
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float,
    labels: torch.Tensor | None = None,
    anchors: slice = EVERY_SAMPLE,
) -> torch.Tensor:
    """The loss called `name`: "ntxent", "infonce" (mean of both directions) or "supcon" (needs `labels`)."""
    if name == "ntxent":
        return nt_xent(z1, z2, temperature, anchors)
    if name == "infonce":
        return (info_nce(z1, z2, temperature, anchors) + info_nce(z2, z1, temperature, anchors)) / 2
    if name == "supcon":
        if labels is None:
            raise ValueError("the supcon loss needs labels")
        return supcon(z1, z2, labels, temperature, anchors)
    raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSS_NAMES)}")
