"""Several processes, one training run: the torchrun environment and DistributedDataParallel glue.

A distributed run behaves as one process with the global batch: `--batch-size` is the global batch (each process
takes its share), the contrastive loss contrasts every process's positives with the projections of all processes
(gathered with their gradients), and batch norms use the statistics of the global batch. A step of W processes
then has the loss and the gradients of one process on the concatenated batch (tests/test_distributed.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from musimilar.errors import SettingsError
from musimilar.losses import contrastive_loss, multi_view_supcon


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def ranks_from_environment() -> Ranks:
    """The ranks torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK); a single process otherwise."""
    return Ranks(
        rank=int(os.environ.get("RANK", 0)),
        world=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def start(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (NCCL on GPUs, gloo on the CPU); returns this rank's device."""
    if not ranks.distributed:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(ranks.local_rank)
        device = torch.device("cuda", ranks.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (a stop decision all ranks must share)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def mean_over_ranks(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], device=device, dtype=torch.float64 if device.type == "cpu" else torch.float32)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / dist.get_world_size()


def check_batch_size(batch_size: int, ranks: Ranks) -> None:
    """`--batch-size` is the global batch: each of the W processes takes batch_size / W pairs."""
    if batch_size % ranks.world:
        raise SettingsError(
            f"train.batch_size: {batch_size} is not divisible by the {ranks.world} processes "
            f"(each takes an equal share of the global batch); use a multiple of {ranks.world}"
        )


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def _sizes_over_ranks(count: int, device: torch.device) -> list[int]:
    """How many rows each process holds this step (the last batch of an epoch may split unevenly)."""
    mine = torch.tensor([count], device=device)
    sizes = [torch.zeros_like(mine) for _ in range(_world())]
    dist.all_gather(sizes, mine)
    return [int(size.item()) for size in sizes]


def _gather_rows(tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Every process's rows, in rank order: [sum(sizes), ...]. Padded to the largest share for all_gather."""
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: len(tensor)] = tensor
    pieces = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(pieces, padded)
    return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)])


class _GatherWithGradient(torch.autograd.Function):
    """all_gather whose backward hands each process the gradient of its own rows, summed over all processes' losses.

    (A plain all_gather cuts the graph: the negatives from other processes would push on nothing.)
    """

    @staticmethod
    def forward(ctx, local: torch.Tensor, sizes: list[int]) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes = sizes
        return _gather_rows(local, sizes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # gloo has no reduce_scatter
        start = sum(ctx.sizes[: dist.get_rank()])
        return grad[start : start + ctx.sizes[dist.get_rank()]], None


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: every process's output depends on every process's input."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total


def global_contrastive_loss(
    name: str, z1: torch.Tensor, z2: torch.Tensor, temperature: float, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """The loss rows of this process's pairs against the pairs of every process (all negatives of the batch).

    DistributedDataParallel averages the gradients of the W processes, so each process's mean is weighted by
    W x its share of the rows: the average is then the mean over the global batch, even when shares are uneven.
    """
    if _world() == 1:
        return contrastive_loss(name, z1, z2, temperature, labels)
    sizes = _sizes_over_ranks(len(z1), z1.device)
    rank = dist.get_rank()
    both = _GatherWithGradient.apply(torch.stack([z1, z2], dim=1), sizes)  # [N, 2, D] for the global batch N
    every_label = _gather_rows(labels, sizes) if labels is not None else None  # [N]
    if sizes[rank] == 0:
        return both.sum() * 0.0  # no rows of its own; still takes part in the backward's collectives
    start = sum(sizes[:rank])
    loss = contrastive_loss(
        name, both[:, 0], both[:, 1], temperature, every_label, anchors=slice(start, start + sizes[rank])
    )
    return loss * (len(sizes) * sizes[rank] / sum(sizes))


def global_multi_view_loss(z: torch.Tensor, classes: torch.Tensor, views: int, temperature: float) -> torch.Tensor:
    """Multi-crop loss (losses.multi_view_supcon) of this process's `views` crops of each of its B samples (`z`
    [views * B, D], view-major; `classes` [B]) against the crops of every process, weighted as
    `global_contrastive_loss` is so that DistributedDataParallel's average is the global batch's mean."""
    if _world() == 1:
        return multi_view_supcon(z, classes.repeat(views), temperature)
    local = z.reshape(views, -1, z.shape[1]).transpose(0, 1).contiguous()  # [B, views, D]
    sizes = _sizes_over_ranks(len(local), z.device)
    rank = dist.get_rank()
    every = _GatherWithGradient.apply(local, sizes)  # [N, views, D]
    every_class = _gather_rows(classes, sizes)  # [N]
    if sizes[rank] == 0:
        return every.sum() * 0.0
    total, start = sum(sizes), sum(sizes[:rank])
    own = torch.arange(start, start + sizes[rank], device=z.device)
    anchors = torch.cat([own + view * total for view in range(views)])
    flat = every.transpose(0, 1).reshape(views * total, -1)  # view-major over the global batch
    loss = multi_view_supcon(flat, every_class.repeat(views), temperature, anchors)
    return loss * (len(sizes) * sizes[rank] / total)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch of all processes while training (SimCLR's global BN), for any device.

    torch's SyncBatchNorm needs a GPU; this one runs on gloo too. Statistics are computed in two passes (mean, then
    the mean squared deviation) in at least float32; out of training, or in a single process, it is a plain batch norm.
    """

    def __init__(self, *args, local_class: type[nn.modules.batchnorm._BatchNorm] = nn.BatchNorm2d, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.local_class = local_class

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected a batch of at least 2 dimensions, got {input.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or _world() == 1:
            return super().forward(x)
        over = [0, *range(2, x.dim())]  # every axis but the channel
        shape = [1, -1] + [1] * (x.dim() - 2)
        values = x.to(torch.promote_types(x.dtype, torch.float32))
        local = torch.cat([values.sum(over), values.new_tensor([x.numel() / x.shape[1]])])  # [C + 1]: sums, count
        totals = _SumOverRanks.apply(local)
        count = totals[-1].detach()
        mean = totals[:-1] / count  # [C]
        centred = values - mean.view(shape)
        variance = _SumOverRanks.apply(centred.pow(2).sum(over)) / count  # [C], biased, as in training
        out = centred * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        self._update_running_statistics(mean.detach(), variance.detach(), count)
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_statistics(self, mean: torch.Tensor, variance: torch.Tensor, count: torch.Tensor) -> None:
        """As torch's batch norm does (unbiased variance), without a device-to-host copy of the count."""
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = variance * count / (count - 1).clamp(min=1)
        self.running_mean.mul_(1 - factor).add_(factor * mean.to(self.running_mean.dtype))
        self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var.dtype))


def _replace_batch_norms(module: nn.Module, convert) -> nn.Module:
    for name, child in module.named_children():
        replacement = convert(child)
        if replacement is not None:
            setattr(module, name, replacement)
        else:
            _replace_batch_norms(child, convert)
    return module


def _moved(source: nn.modules.batchnorm._BatchNorm, target: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """`target` sharing the parameters and statistics of `source` (the optimizer keeps working)."""
    target.weight, target.bias = source.weight, source.bias
    target.running_mean, target.running_var = source.running_mean, source.running_var
    target.num_batches_tracked = source.num_batches_tracked
    target.train(source.training)
    return target


def _settings_of(norm: nn.modules.batchnorm._BatchNorm) -> dict:
    return dict(
        num_features=norm.num_features,
        eps=norm.eps,
        momentum=norm.momentum,
        affine=norm.affine,
        track_running_stats=norm.track_running_stats,
    )


def synchronise_batch_norm(module: nn.Module) -> nn.Module:
    """Turn every batch norm under `module` into a GlobalBatchNorm, in place; returns `module`."""

    def convert(child: nn.Module) -> nn.Module | None:
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            return _moved(child, GlobalBatchNorm(**_settings_of(child), local_class=type(child)))
        return None

    return _replace_batch_norms(module, convert)


def local_batch_norm(module: nn.Module) -> nn.Module:
    """Undo `synchronise_batch_norm` (before one process alone runs the model in training mode); returns `module`."""

    def convert(child: nn.Module) -> nn.Module | None:
        if isinstance(child, GlobalBatchNorm):
            return _moved(child, child.local_class(**_settings_of(child)))
        return None

    return _replace_batch_norms(module, convert)
