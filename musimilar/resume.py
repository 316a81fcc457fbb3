"""Training state kept apart from the shipped model: enough to continue an interrupted run exactly where it was."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musimilar.checkpoint import save_model
from musimilar.errors import CheckpointError, NotReadyError
from musimilar.home import Home, atomic_path
from musimilar.settings import Settings

STATE_FILE = "state.pt"
MACHINE_SPECIFIC = ("device", "loader_workers", "compile")  # may differ on the machine that resumes


@dataclass
class ResumeState:
    payload: dict[str, Any]

    @property
    def train_rows(self) -> np.ndarray:
        return self.payload["train_rows"].numpy()

    @property
    def val_rows(self) -> np.ndarray:
        return self.payload["val_rows"].numpy()

    def settings_for(self, current: Settings) -> Settings:
        """The interrupted run's settings, but for the machine-specific ones given now."""
        saved = Settings.model_validate(self.payload["settings"])
        for key in MACHINE_SPECIFIC:
            setattr(saved.train, key, getattr(current.train, key))
        return saved

    def restore(self, run: Any) -> None:
        """Put the run (model, optimizer, generators, counters) back where it was saved."""
        payload = self.payload
        if payload["track_ids"] != list(run.library.track_ids):
            raise NotReadyError("the library changed since the interrupted run: start a new run (without --resume)")
        run.model.load_state_dict(payload["model"])
        run.optimizer.load_state_dict(payload["optimizer"])
        run.epoch, run.step_in_epoch = payload["epoch"], payload["step_in_epoch"]
        run.global_step, run.elapsed_before = payload["global_step"], payload["elapsed"]
        run.history = list(payload["history"])
        run.epoch_plan_state = payload["epoch_plan_state"]
        if run.view_generator.device.type == payload["view_generator_device"]:
            run.view_generator.set_state(payload["view_generator_state"])
        torch.set_rng_state(payload["torch_rng_state"])


def state_path(home: Home) -> Path:
    return home.training_dir / STATE_FILE


def save_resume_state(home: Home, run: Any) -> None:
    payload = {
        "settings": run.settings.model_dump(mode="json"),
        "track_ids": list(run.library.track_ids),
        "train_rows": torch.from_numpy(np.asarray(run.train_rows)),
        "val_rows": torch.from_numpy(np.asarray(run.val_rows)),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "epoch": run.epoch,
        "step_in_epoch": run.step_in_epoch,
        "global_step": run.global_step,
        "elapsed": run.elapsed,
        "history": run.history,
        "epoch_plan_state": run.epoch_plan_state,
        "view_generator_state": run.view_generator.get_state(),
        "view_generator_device": run.view_generator.device.type,
        "torch_rng_state": torch.get_rng_state(),
        "saved_at": time.time(),
    }
    with atomic_path(state_path(home)) as temp:
        torch.save(payload, temp)


def load_resume_state(home: Home, current: Settings) -> ResumeState:
    path = state_path(home)
    if not path.is_file():
        raise NotReadyError(f"{path}: no interrupted training run to resume (train without --resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file of any kind
        raise CheckpointError(path, f"cannot read the training state ({type(error).__name__})") from None
    saved = Settings.model_validate(payload["settings"])
    if payload["epoch"] >= saved.train.epochs:
        raise NotReadyError(f"the last run already finished its {saved.train.epochs} epochs: nothing to resume")
    return ResumeState(payload)


EPOCH_MODEL_FILE = "last-epoch.pt"


def save_epoch_model(home: Home, run: Any) -> Path:
    """The model as it stands after an epoch, as a complete model file (`musimilar embed --model` takes it)."""
    settings: Settings = run.settings
    path = home.training_dir / EPOCH_MODEL_FILE
    save_model(
        path, run.model.encoder, settings.audio, settings.mel, settings.model, settings.embed, _training_summary(run)
    )
    return path


def publish_model(home: Home, run: Any) -> tuple[Path, str]:
    """Write the trained encoder as the home's current model (and keep a copy named by its fingerprint)."""
    settings: Settings = run.settings
    current = home.current_model_path
    fingerprint = save_model(
        current, run.model.encoder, settings.audio, settings.mel, settings.model, settings.embed, _training_summary(run)
    )
    with atomic_path(home.models_dir / f"model-{fingerprint}.pt") as temp:
        shutil.copyfile(current, temp)
    return current, fingerprint


def _training_summary(run: Any) -> dict[str, Any]:
    settings: Settings = run.settings
    last = run.history[-1] if run.history else {}
    return {
        "epochs": run.epoch,
        "steps": run.global_step,
        "seconds": round(run.elapsed, 1),
        "trained_at": time.time(),
        "tracks": len(run.train_rows),
        "val_segment_top1": last.get("val_segment_top1"),
        "train_loss": last.get("train_loss"),
        "settings": settings.train.model_dump(mode="json"),
        "augment": settings.augment.model_dump(mode="json"),
    }
