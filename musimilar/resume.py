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
MACHINE_SPECIFIC = ("device", "loader_workers", "compile", "precision")  # may differ on the machine that resumes


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
    stopped: str | None = None  # why the run ended ("completed", "time budget", ...); None while it runs
    cooldown: tuple[int, int] | None = None  # open-ended runs: (first, last) step of the final decay
    plateau_epoch: int | None = None  # open-ended runs: the epoch after which validation stopped improving


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
    best_model: dict[str, torch.Tensor] | None = None  # open-ended runs: the best epoch's weights so far

    def settings_for(self, current: Settings) -> Settings:
        """The saved run's settings, but for the machine-specific ones given now, and extended by the `epochs` or
        `minutes` given now: `minutes` gives the run that many more minutes, `epochs` raises its epoch count.
        NotReadyError when the run had finished and nothing extends it."""
        saved = self.settings.model_copy(deep=True)
        for key in MACHINE_SPECIFIC:
            setattr(saved.train, key, getattr(current.train, key))
        state, given = self.state, current.train
        if given.epochs is None and given.minutes is None:
            if state.stopped is not None:
                raise NotReadyError(
                    f"the last run finished ({state.stopped}) after {state.epoch} epochs: nothing to resume; "
                    "continue it with `--resume --minutes M` or `--resume --epochs N`"
                )
            return saved
        if given.epochs is not None and given.epochs <= state.epoch:
            raise NotReadyError(
                f"the last run already trained {state.epoch} epochs: --epochs must be above that to continue it"
            )
        spent_minutes = state.elapsed_before / 60
        if given.epochs is not None:
            saved.train.epochs = given.epochs
            if given.minutes is None and saved.train.minutes is not None and spent_minutes >= saved.train.minutes:
                saved.train.minutes = None  # the spent budget no longer applies: the epochs decide
        if given.minutes is not None:
            saved.train.minutes = spent_minutes + given.minutes
            if given.epochs is None and saved.train.epochs is not None and state.epoch >= saved.train.epochs:
                saved.train.epochs = None  # the epochs are done: the new minutes decide
        state.stopped, state.cooldown, state.plateau_epoch = None, None, None  # no longer open-ended
        self.best_model = None
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
        "stopped": state.stopped,
        "cooldown": list(state.cooldown) if state.cooldown else None,
        "plateau_epoch": state.plateau_epoch,
        "best_model": point.best_model,
        "saved_at": time.time(),
    }
    with atomic_path(state_path(home)) as temp:
        torch.save(payload, temp)


def load_resume_point(home: Home) -> ResumePoint:
    """The saved point of the home's last run (interrupted or finished); NotReadyError when there is none."""
    path = state_path(home)
    if not path.is_file():
        raise NotReadyError(f"{path}: no interrupted training run to resume (train without --resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file of any kind
        raise CheckpointError(path, f"cannot read the training state ({type(error).__name__})") from None
    settings = Settings.model_validate(payload["settings"])
    stopped = payload.get("stopped")
    if stopped is None and settings.train.epochs is not None and payload["epoch"] >= settings.train.epochs:
        stopped = "completed"  # saved before runs recorded why they ended
    cooldown = payload.get("cooldown")
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
        stopped,
        tuple(cooldown) if cooldown else None,
        payload.get("plateau_epoch"),
    )
    return ResumePoint(
        settings,
        state,
        payload["model"],
        payload["optimizer"],
        payload["view_generator_state"],
        payload["view_generator_device"],
        payload["torch_rng_state"],
        payload.get("best_model"),
    )
