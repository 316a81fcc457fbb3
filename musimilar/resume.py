"""Training state kept apart from the shipped model: enough to continue an interrupted run exactly where it was."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musimilar.errors import CheckpointError, NotReadyError
from musimilar.home import Home, atomic_path
from musimilar.settings import Settings

STATE_FILE = "state.pt"
MACHINE_SPECIFIC = ("device", "loader_workers", "compile")  # may differ on the machine that resumes


@dataclass
class TrainingState:
    """Where a run stands, besides its weights and optimizer: the split, the counters, the history."""

    track_ids: list[int]  # the catalog tracks the run trains on, in row order
    train_rows: np.ndarray  # [N_train] int64 rows of track_ids
    val_rows: np.ndarray  # [N_val] int64
    epoch: int = 0  # epochs finished
    step_in_epoch: int = 0
    global_step: int = 0
    elapsed_before: float = 0.0  # seconds trained before this process started
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch
    epoch_plan_state: torch.Tensor | None = None  # the plan generator's state at the start of the current epoch


@dataclass
class ResumePoint:
    """Everything `train --resume` restores: the run's settings, its state, and the trainer's tensors."""

    settings: Settings
    state: TrainingState
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    view_generator: torch.Tensor
    view_generator_device: str
    torch_rng: torch.Tensor

    def settings_for(self, current: Settings) -> Settings:
        """The interrupted run's settings, but for the machine-specific ones given now."""
        saved = self.settings.model_copy(deep=True)
        for key in MACHINE_SPECIFIC:
            setattr(saved.train, key, getattr(current.train, key))
        return saved


def state_path(home: Home) -> Path:
    return home.training_dir / STATE_FILE


def save_resume_point(home: Home, point: ResumePoint) -> None:
    state = point.state
    payload = {
        "settings": point.settings.model_dump(mode="json"),
        "track_ids": list(state.track_ids),
        "train_rows": torch.from_numpy(np.asarray(state.train_rows)),
        "val_rows": torch.from_numpy(np.asarray(state.val_rows)),
        "model": point.model,
        "optimizer": point.optimizer,
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "global_step": state.global_step,
        "elapsed": state.elapsed_before,
        "history": state.history,
        "epoch_plan_state": state.epoch_plan_state,
        "view_generator_state": point.view_generator,
        "view_generator_device": point.view_generator_device,
        "torch_rng_state": point.torch_rng,
        "saved_at": time.time(),
    }
    with atomic_path(state_path(home)) as temp:
        torch.save(payload, temp)


def load_resume_point(home: Home) -> ResumePoint:
    """The saved point of the home's interrupted run; NotReadyError when there is none or it had finished."""
    path = state_path(home)
    if not path.is_file():
        raise NotReadyError(f"{path}: no interrupted training run to resume (train without --resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file of any kind
        raise CheckpointError(path, f"cannot read the training state ({type(error).__name__})") from None
    settings = Settings.model_validate(payload["settings"])
    if payload["epoch"] >= settings.train.epochs:
        raise NotReadyError(f"the last run already finished its {settings.train.epochs} epochs: nothing to resume")
    state = TrainingState(
        list(payload["track_ids"]),
        payload["train_rows"].numpy(),
        payload["val_rows"].numpy(),
        payload["epoch"],
        payload["step_in_epoch"],
        payload["global_step"],
        payload["elapsed"],
        list(payload["history"]),
        payload["epoch_plan_state"],
    )
    return ResumePoint(
        settings,
        state,
        payload["model"],
        payload["optimizer"],
        payload["view_generator_state"],
        payload["view_generator_device"],
        payload["torch_rng_state"],
    )
