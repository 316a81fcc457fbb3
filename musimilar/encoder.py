"""The CNN encoder over log-mel spectrograms and the SimCLR projection head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from musimilar.settings import ModelSettings


class ConvBlock(nn.Module):
    """Conv 3x3 → BatchNorm → ReLU → MaxPool 2 → Dropout; halves frequency and time (rounding up)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        # ceil_mode keeps a 1-wide map at 1 instead of failing, so short inputs pass through deep presets.
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.pool(F.relu(self.norm(self.conv(x)))))  # [B, C_out, ceil(F/2), ceil(T/2)]


class Encoder(nn.Module):
    """Log-mel in dB `[B, n_mels, T]` → embedding `[B, embedding_dim]`, for any n_mels and T.

    The input is normalised by a BatchNorm over the single input channel: in eval mode it uses running statistics,
    so an embedding never depends on the clip's own level.
    """

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1)
        self.input_pool = nn.AvgPool2d(settings.pool, ceil_mode=True) if settings.pool > 1 else nn.Identity()
        widths = (1, *settings.block_channels)
        self.blocks = nn.Sequential(
            *(ConvBlock(c_in, c_out, settings.dropout) for c_in, c_out in zip(widths[:-1], widths[1:]))
        )
        self.embedding_dim = settings.embedding_dim
        # Pooled ReLU features are all positive and share a large common part, which packs every cosine near 1;
        # standardising each dimension with statistics learnt in training centres them, so cosines spread out.
        self.output_norm = nn.BatchNorm1d(settings.embedding_dim, affine=False)
        _initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.input_pool(self.input_norm(x.unsqueeze(1))))  # [B, C, F', T']
        over_time = features.mean(dim=2)  # [B, C, T']
        # Mean keeps the overall character, max keeps short salient events.
        return self.output_norm(over_time.mean(dim=2) + over_time.amax(dim=2))  # [B, embedding_dim]


def _initialise(module: nn.Module) -> None:
    """Kaiming init for convolutions (ReLU follows), identity for batch norms."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.affine:
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class ProjectionHead(nn.Sequential):
    """SimCLR's 2-layer MLP: Linear → BatchNorm → ReLU → Linear; the hidden width defaults to `in_dim`."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        hidden_dim = hidden_dim or in_dim
        super().__init__(
            nn.Linear(in_dim, hidden_dim, bias=False),  # the batch norm's bias replaces it
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )


class ContrastiveModel(nn.Module):
    """Encoder plus projection head, trained together and shipped together: a track's vector is the head's output.

    The head's output is what the contrastive loss shapes, so it tells tracks (and a track's parts) apart best: on
    the development set it finds a track's other 10 s segment far more often than the encoder's output, and its
    labelled neighbours are as good or better (docs/quality.md, "The vector a model ships"). `projection=False`
    builds the encoder alone, whose output is the vector: model files of format 1 were written that way.
    """

    def __init__(self, settings: ModelSettings, projection: bool = True) -> None:
        super().__init__()
        self.encoder = Encoder(settings)
        self.head = ProjectionHead(settings.embedding_dim, settings.projection_dim) if projection else nn.Identity()
        self.output_dim = settings.projection_dim if projection else settings.embedding_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, z): encoder output `[B, embedding_dim]` and its projection `[B, output_dim]`, not normalised."""
        h = self.encoder(x)  # [B, embedding_dim]
        return h, self.head(h)  # [B, output_dim]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-length track vectors `[B, output_dim]` (the projections), ready for cosine similarity."""
        return F.normalize(self(x)[1], dim=1)
