"""One training step per case, run by `torchrun` from tests/test_distributed.py (any number of processes).

Each process takes its contiguous share of a seeded global batch, steps through the distributed path (global batch
norm, DistributedDataParallel, gathered loss) and rank 0 saves the loss averaged over processes, the averaged
gradients and the batch norms' running statistics, for the test to compare with one process on the whole batch.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from musimilar import distributed
from musimilar.encoder import ContrastiveModel
from musimilar.settings import ModelSettings

MODEL = ModelSettings(channels=[4, 8], dropout=0.0)
N_MELS, FRAMES, TEMPERATURE = 16, 24, 0.2
CASES = (("ntxent", 8), ("infonce", 8), ("supcon", 8), ("ntxent", 7), ("multicrop", 8), ("multicrop", 7))  # 7: uneven
# split; "multicrop": three views of each sample, losses.multi_view_supcon
MULTICROP_VIEWS = 3


def case_inputs(batch: int, loss_name: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The views [B, n_mels, T] (three for multi-crop, else two) and labels [B] of a seeded global batch (float64:
    tight comparisons)."""
    generator = torch.Generator().manual_seed(batch)
    first = torch.randn(batch, N_MELS, FRAMES, generator=generator, dtype=torch.float64)
    count = MULTICROP_VIEWS if loss_name == "multicrop" else 2
    others = [
        first + 0.3 * torch.randn(batch, N_MELS, FRAMES, generator=generator, dtype=torch.float64)
        for _ in range(count - 1)
    ]
    return [first, *others], torch.arange(batch) % 3


def fresh_model() -> ContrastiveModel:
    torch.manual_seed(0)
    return ContrastiveModel(MODEL).double()


def step(network: torch.nn.Module, views: list[torch.Tensor], labels, loss_name: str):
    """Forward all views in one batch, as training does; returns the loss (backward done)."""
    _, z = network(torch.cat(views))
    if loss_name == "multicrop":
        loss = distributed.global_multi_view_loss(z, labels, len(views), TEMPERATURE)
    else:
        z1, z2 = z.chunk(2)
        loss = distributed.global_contrastive_loss(loss_name, z1, z2, TEMPERATURE, labels)
    loss.backward()
    return loss


def share(batch: int, rank: int, world: int) -> slice:
    bounds = np.linspace(0, batch, world + 1).round().astype(int)
    return slice(int(bounds[rank]), int(bounds[rank + 1]))


def main(output: str) -> None:
    ranks = distributed.ranks_from_environment()
    distributed.start(ranks, torch.device("cpu"))
    results = {}
    for loss_name, batch in CASES:
        model = fresh_model()
        network = torch.nn.parallel.DistributedDataParallel(distributed.synchronise_batch_norm(model))
        views, labels = case_inputs(batch, loss_name)
        mine = share(batch, ranks.rank, ranks.world)
        loss = step(network, [view[mine] for view in views], labels[mine], loss_name)
        distributed.local_batch_norm(model)
        results[f"{loss_name}/{batch}"] = {
            "loss": distributed.mean_over_ranks(float(loss.detach()), torch.device("cpu")),
            "gradients": {name: p.grad.clone() for name, p in model.named_parameters()},
            "statistics": {name: b.clone() for name, b in model.named_buffers()},
        }
        del network  # its reducer must not outlive the process group
    if ranks.is_main:
        torch.save(results, output)
    distributed.barrier()  # no process leaves the group while another still uses it
    distributed.stop()


if __name__ == "__main__":
    main(sys.argv[1])
