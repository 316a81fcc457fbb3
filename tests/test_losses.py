import math

import pytest
import torch

from musimilar.losses import contrastive_loss, info_nce, multi_view_supcon, nt_xent, supcon

TEMPERATURE = 0.2


def pair(size: int = 6, dim: int = 5, spread: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views: z2 is z1 moved by `spread` of random noise."""
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(size, dim, generator=generator, dtype=torch.float64)
    z2 = z1 + spread * torch.randn(size, dim, generator=generator, dtype=torch.float64)
    return z1, z2


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a @ b / (a.norm() * b.norm())).item()


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    views = list(z1) + list(z2)
    size, total = len(z1), 0.0
    for i, anchor in enumerate(views):
        positive = views[(i + size) % (2 * size)]
        denominator = sum(math.exp(cosine(anchor, other) / temperature) for k, other in enumerate(views) if k != i)
        total += -math.log(math.exp(cosine(anchor, positive) / temperature) / denominator)
    return total / len(views)


def reference_info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float) -> float:
    total = 0.0
    for i, anchor in enumerate(query):
        denominator = sum(math.exp(cosine(anchor, other) / temperature) for other in key)
        total += -math.log(math.exp(cosine(anchor, key[i]) / temperature) / denominator)
    return total / len(query)


def reference_supcon(z1: torch.Tensor, z2: torch.Tensor, labels: list[int], temperature: float) -> float:
    views, view_labels = list(z1) + list(z2), labels + labels
    total = 0.0
    for i, anchor in enumerate(views):
        others = [k for k in range(len(views)) if k != i]
        denominator = sum(math.exp(cosine(anchor, views[k]) / temperature) for k in others)
        positives = [p for p in others if view_labels[p] == view_labels[i]]
        log_probs = [math.log(math.exp(cosine(anchor, views[p]) / temperature) / denominator) for p in positives]
        total += -sum(log_probs) / len(positives)
    return total / len(views)


def test_nt_xent_matches_the_reference() -> None:
    z1, z2 = pair()
    assert nt_xent(z1, z2, TEMPERATURE).item() == pytest.approx(reference_nt_xent(z1, z2, TEMPERATURE), rel=1e-10)


def test_info_nce_matches_the_reference() -> None:
    z1, z2 = pair()
    expected = reference_info_nce(z1, z2, TEMPERATURE)
    assert info_nce(z1, z2, TEMPERATURE).item() == pytest.approx(expected, rel=1e-10)


def test_supcon_matches_the_reference() -> None:
    z1, z2 = pair(size=8)
    labels = [0, 1, 0, 2, 1, 0, 3, 2]
    expected = reference_supcon(z1, z2, labels, TEMPERATURE)
    assert supcon(z1, z2, torch.tensor(labels), TEMPERATURE).item() == pytest.approx(expected, rel=1e-10)


def test_supcon_with_distinct_labels_is_nt_xent() -> None:
    z1, z2 = pair()
    distinct = torch.arange(len(z1))
    torch.testing.assert_close(supcon(z1, z2, distinct, TEMPERATURE), nt_xent(z1, z2, TEMPERATURE))


@pytest.mark.parametrize("name", ["ntxent", "infonce", "supcon"])
def test_loss_falls_when_positives_move_closer(name: str) -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    far = contrastive_loss(name, *pair(spread=2.0), TEMPERATURE, labels=labels)
    near = contrastive_loss(name, *pair(spread=0.1), TEMPERATURE, labels=labels)
    assert near < far


def test_symmetric_info_nce_averages_both_directions() -> None:
    z1, z2 = pair()
    forward, backward = info_nce(z1, z2, TEMPERATURE), info_nce(z2, z1, TEMPERATURE)
    assert not torch.isclose(forward, backward)
    symmetric = contrastive_loss("infonce", z1, z2, TEMPERATURE)
    torch.testing.assert_close(symmetric, (forward + backward) / 2)
    torch.testing.assert_close(contrastive_loss("infonce", z2, z1, TEMPERATURE), symmetric)


def test_dispatch_and_errors() -> None:
    z1, z2 = pair()
    torch.testing.assert_close(contrastive_loss("ntxent", z1, z2, TEMPERATURE), nt_xent(z1, z2, TEMPERATURE))
    with pytest.raises(ValueError, match="labels"):
        contrastive_loss("supcon", z1, z2, TEMPERATURE)
    with pytest.raises(ValueError, match="unknown loss"):
        contrastive_loss("triplet", z1, z2, TEMPERATURE)


def test_losses_ignore_scale_and_compute_in_at_least_float32() -> None:
    z1, z2 = pair()
    torch.testing.assert_close(nt_xent(10 * z1, z2, TEMPERATURE), nt_xent(z1, z2, TEMPERATURE))
    assert nt_xent(z1, z2, TEMPERATURE).dtype == torch.float64
    for loss in (nt_xent, info_nce):
        assert loss(z1.bfloat16(), z2.bfloat16(), TEMPERATURE).dtype == torch.float32


@pytest.mark.parametrize("name", ["ntxent", "infonce", "supcon"])
def test_half_precision_and_tiny_temperature_stay_finite(name: str) -> None:
    z1, z2 = (z.to(torch.bfloat16).requires_grad_() for z in pair())
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    loss = contrastive_loss(name, z1, z2, 0.001, labels=labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z1.grad.float()).all() and torch.isfinite(z2.grad.float()).all()


@pytest.mark.parametrize("name", ["ntxent", "infonce", "supcon"])
def test_rows_of_anchor_slices_average_to_the_whole_loss(name: str) -> None:
    """A distributed run splits the anchors between processes; weighted by size, the parts make the whole."""
    z1, z2 = pair(size=7)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])
    whole = contrastive_loss(name, z1, z2, TEMPERATURE, labels=labels)
    parts = [slice(0, 4), slice(4, 7)]
    weighted = sum(
        contrastive_loss(name, z1, z2, TEMPERATURE, labels=labels, anchors=part) * (part.stop - part.start) / 7
        for part in parts
    )
    torch.testing.assert_close(weighted, whole)



def reference_multi_view_supcon(views: list[torch.Tensor], labels: list[int], temperature: float) -> float:
    total = 0.0
    for i, anchor in enumerate(views):
        others = [k for k in range(len(views)) if k != i]
        denominator = sum(math.exp(cosine(anchor, views[k]) / temperature) for k in others)
        positives = [p for p in others if labels[p] == labels[i]]
        total += -sum(
            math.log(math.exp(cosine(anchor, views[p]) / temperature) / denominator) for p in positives
        ) / len(positives)
    return total / len(views)


def test_multi_view_supcon_matches_the_reference_with_three_crops_per_track() -> None:
    z1, z2 = pair()
    z3 = z1 - 0.3 * z2
    tracks = torch.arange(len(z1))
    z, labels = torch.cat([z1, z2, z3]), tracks.repeat(3)
    expected = reference_multi_view_supcon(list(z), labels.tolist(), TEMPERATURE)
    assert multi_view_supcon(z, labels, TEMPERATURE).item() == pytest.approx(expected, rel=1e-9)


def test_multi_view_supcon_with_two_views_is_supcon_and_nt_xent() -> None:
    z1, z2 = pair()
    labels = torch.tensor([0, 1, 0, 2, 3, 1])
    two = multi_view_supcon(torch.cat([z1, z2]), labels.repeat(2), TEMPERATURE)
    torch.testing.assert_close(two, supcon(z1, z2, labels, TEMPERATURE))
    distinct = multi_view_supcon(torch.cat([z1, z2]), torch.arange(6).repeat(2), TEMPERATURE)
    torch.testing.assert_close(distinct, nt_xent(z1, z2, TEMPERATURE))
