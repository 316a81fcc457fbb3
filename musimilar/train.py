"""Self-supervised training on the cached log-mels: the loop, the schedule, resume and validation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from musimilar import distributed
from musimilar.augment import Augmenter
from musimilar.batches import load_in_background, plan_epoch
from musimilar.cache import CACHE_KEY, CacheReader, cache_directory
from musimilar.catalog import Catalog, Placement
from musimilar.checkpoint import publish_model, save_epoch_model
from musimilar.devices import autocast, fast_memory_format, pick_device
from musimilar.encoder import ContrastiveModel
from musimilar.errors import NotReadyError
from musimilar.frames import crop_frames
from musimilar.home import Home
from musimilar.labels import label_of
from musimilar.mel import preprocessing_fingerprint
from musimilar.resume import ResumePoint, TrainingState, load_resume_point, save_resume_point
from musimilar.run_length import (
    RunLength,
    best_epoch,
    default_cooldown,
    describe_expected_duration,
    no_longer_improving,
    plateau_cooldown,
    run_length,
)
from musimilar.schedule import learning_rate, open_ended_rate
from musimilar.settings import Settings
from musimilar.threads import thread_limit
from musimilar.validation import DISTRACTOR_TRACKS, ValidationSet, split_tracks, validate, validation_set

Notify = Callable[[str], None]
RECALIBRATION_CROPS = 2048  # crops that re-estimate the batch-norm statistics of the shipped model
TIMING_STEPS = 10  # steps timed before the expected duration is announced


@dataclass
class StepEvent:
    epoch: int  # 1-based
    epochs: int | None  # the epoch cap; None for a run timed by its budget alone
    step: int  # steps done in this epoch
    steps: int  # steps in this epoch
    loss: float
    clips_per_second: float


@dataclass
class TrainReport:
    model_path: str
    fingerprint: str
    epochs: int
    steps: int
    stopped: str  # "completed", "time budget", "no longer improving" or "ceiling" (docs/guide.md)
    seconds: float
    clips_per_second: float
    batch_size: int
    train_tracks: int
    validation_tracks: int
    device: str
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainingData:
    """What one training run reads: the tracks' cache placements and supervised-contrastive labels."""

    track_ids: list[int]
    placements: list[Placement]
    labels: np.ndarray  # [N] integer label per track (unique ids for unlabelled tracks)
    reader: CacheReader


def train(
    home: Home,
    settings: Settings,
    resume: bool = False,
    on_step: Callable[[StepEvent], None] | None = None,
    notify: Notify | None = None,
) -> TrainReport:
    """Train (or resume) a model on the home's cached log-mels; the result becomes the home's current model."""
    notify = notify or (lambda text: None)
    ranks = distributed.ranks_from_environment()
    distributed.check_batch_size(settings.train.batch_size, ranks)
    device = distributed.start(ranks, pick_device(settings.train.device))
    point = load_resume_point(home) if resume else None
    if point is not None:
        settings = point.settings_for(settings)
    data = _open_training_data(home, settings)
    run = _Run(home, settings, data, device, ranks, point, notify)
    try:
        return run.fit(on_step)
    finally:
        distributed.stop()


def _open_training_data(home: Home, settings: Settings) -> TrainingData:
    with Catalog(home.catalog_path) as catalog:
        if catalog.get_meta(CACHE_KEY) not in (None, preprocessing_fingerprint(settings.audio, settings.mel)):
            raise NotReadyError(
                f"{home.root}: the spectrogram cache was made with other audio or mel settings: "
                "run `musimilar convert DIR` (or `musimilar train DIR`) to rebuild it"
            )
        placements = catalog.placements()
        tracks = {track.id: track for track in catalog.tracks("ok")}
    ids = [track_id for track_id in sorted(placements) if track_id in tracks]
    if len(ids) < 2:
        raise NotReadyError(
            f"{home.root}: {len(ids)} converted tracks; training needs at least 2 "
            "(run `musimilar convert DIR` or `musimilar train DIR`)"
        )
    by = settings.train.by
    names = [label_of(tracks[i], by) if by and settings.train.loss == "supcon" else None for i in ids]
    if settings.train.loss == "supcon" and not any(names):
        raise NotReadyError(f"--loss supcon needs labels: no track has a '{by}' label (set --by)")
    codes = {name: code for code, name in enumerate(sorted({n for n in names if n}))}
    labels = np.array([codes[n] if n else len(codes) + row for row, n in enumerate(names)], dtype=np.int64)
    reader = CacheReader(cache_directory(home, settings.audio, settings.mel), settings.mel.n_mels)
    return TrainingData(ids, [placements[i] for i in ids], labels, reader)


def _new_state(data: TrainingData, settings: Settings) -> TrainingState:
    train_rows, val_rows = split_tracks(len(data.track_ids), settings.train.val_fraction, settings.train.seed)
    return TrainingState(list(data.track_ids), train_rows, val_rows)


class _Run:
    """One training run: the model, optimizer and generators around a `TrainingState`; `fit` drives it."""

    def __init__(
        self,
        home: Home,
        settings: Settings,
        data: TrainingData,
        device: torch.device,
        ranks: distributed.Ranks,
        point: ResumePoint | None,
        notify: Notify,
    ) -> None:
        self.home, self.settings, self.data, self.device, self.ranks = home, settings, data, device, ranks
        self.notify = notify if ranks.is_main else (lambda text: None)
        train = settings.train
        torch.manual_seed(train.seed + ranks.rank)
        self.crop_frames = crop_frames(settings.augment.crop_seconds, settings.audio, settings.mel)
        self.state = point.state if point is not None else _new_state(data, settings)
        if self.state.track_ids != list(data.track_ids):
            raise NotReadyError("the library changed since the interrupted run: start a new run (without --resume)")
        self.batch_size = self._batch_size()
        self.model = ContrastiveModel(settings.model).to(device).to(memory_format=fast_memory_format(device))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        self.augmenter = Augmenter(settings.augment)
        self.plan_generator = torch.Generator().manual_seed(train.seed)
        self.view_generator = torch.Generator(device=device).manual_seed(train.seed + 1000 + ranks.rank)
        self.steps_per_epoch = len(self._plan(torch.Generator().manual_seed(0)))
        self.length: RunLength = run_length(train, self.steps_per_epoch, len(self.state.val_rows) > 0)
        self.total_steps = self.length.epochs * self.steps_per_epoch if self.length.epochs else None
        if self.length.open_ended and self.state.cooldown is None:
            self.state.cooldown = default_cooldown(self.length.ceiling_steps)
        self.best_model: dict[str, torch.Tensor] | None = None
        if self.state.epoch_plan_state is None:
            self.state.epoch_plan_state = self.plan_generator.get_state()
        if point is not None:
            self._restore(point)
        self.started = time.perf_counter()
        self.timed_steps, self.timed_seconds = 0, 0.0
        self.network = self._wrap()
        self.validation = self._validation_set()

    def _restore(self, point: ResumePoint) -> None:
        """Put the model, optimizer and generators back where the interrupted run saved them."""
        self.model.load_state_dict(point.model)
        self.optimizer.load_state_dict(point.optimizer)
        if self.view_generator.device.type == point.view_generator_device:
            self.view_generator.set_state(point.view_generator)
        torch.set_rng_state(point.torch_rng)
        self.best_model = point.best_model

    def _resume_point(self) -> ResumePoint:
        self.state.elapsed_before, self.started = self.elapsed, time.perf_counter()
        return ResumePoint(
            self.settings,
            self.state,
            self.model.state_dict(),
            self.optimizer.state_dict(),
            self.view_generator.get_state(),
            self.view_generator.device.type,
            torch.get_rng_state(),
            self.best_model,
        )

    def _validation_set(self) -> ValidationSet | None:
        rows = self.state.val_rows
        if not len(rows) or not self.ranks.is_main:
            return None
        placements = self.data.placements
        distractors = [placements[r] for r in self.state.train_rows[:DISTRACTOR_TRACKS]]
        return validation_set(self.data.reader, [placements[r] for r in rows], self.crop_frames, distractors)

    def _batch_size(self) -> int:
        wanted = self.settings.train.batch_size
        count = len(self.state.train_rows)
        if count < wanted:
            self.notify(
                f"the library has {count} training tracks, fewer than the batch size {wanted}: "
                f"batches of {count} (each track once per batch)"
            )
        size = min(wanted, count)
        return max(self.ranks.world, size - size % self.ranks.world)

    def _wrap(self) -> torch.nn.Module:
        network: torch.nn.Module = self.model
        if self.ranks.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            network = torch.nn.parallel.DistributedDataParallel(distributed.synchronise_batch_norm(self.model), ids)
        if self.settings.train.compile:
            network = torch.compile(network)
        return network

    def _plan(self, generator: torch.Generator) -> list:
        train_rows = self.state.train_rows
        frames = np.array([self.data.placements[r].frames for r in train_rows])
        train = self.settings.train
        plan = plan_epoch(
            frames, self.crop_frames, self.batch_size, train.crops_per_track, generator, train.views_per_track
        )
        for planned in plan:  # each rank trains on its own slice of every batch
            planned.rows = train_rows[planned.rows[self.ranks.rank :: self.ranks.world]]
            planned.starts = planned.starts[self.ranks.rank :: self.ranks.world]
        return plan

    @property
    def elapsed(self) -> float:
        """Seconds this run has trained, across interruptions."""
        return self.state.elapsed_before + time.perf_counter() - self.started

    def learning_rate(self) -> float:
        train = self.settings.train
        if self.length.open_ended:
            warmup_steps = max(1, round(train.warmup_fraction * self.length.ceiling_steps))
            return open_ended_rate(self.state.global_step, warmup_steps, train.lr, self.state.cooldown)
        budget = train.minutes * 60 if train.minutes else None
        return learning_rate(
            self.state.global_step, self.total_steps, self.elapsed, budget, train.lr, train.warmup_fraction
        )

    def fit(self, on_step: Callable[[StepEvent], None] | None) -> TrainReport:
        stopped, clips = "ceiling" if self.length.open_ended else "completed", 0
        try:
            while self.length.epochs is None or self.state.epoch < self.length.epochs:
                clips += self._train_epoch(on_step)
                spent = self._budget_spent()
                self._end_epoch()
                reason = self._stop_reason(spent)
                if reason:
                    stopped = reason
                    break
        except KeyboardInterrupt:
            if self.ranks.is_main:
                save_resume_point(self.home, self._resume_point())
                self.notify(
                    f"training interrupted at epoch {self.state.epoch + 1}, step {self.state.step_in_epoch}: "
                    "resume with `musimilar train --resume`"
                )
            raise
        rate = clips * self.ranks.world / max(self.elapsed, 1e-9)
        model_path, fingerprint = "", ""
        distributed.local_batch_norm(self.model)
        self.state.stopped = stopped
        if self.ranks.is_main:
            save_resume_point(self.home, self._resume_point())  # records why it stopped, for --resume to extend
            self._keep_best_weights()
            self._recalibrate_batch_norm()
            model_path, fingerprint = publish_model(self.home, self.settings, self.model, self._summary())
        distributed.barrier()
        state = self.state
        return TrainReport(
            str(model_path),
            fingerprint,
            state.epoch,
            state.global_step,
            stopped,
            self.elapsed,
            rate,
            self.batch_size,
            len(state.train_rows),
            len(state.val_rows),
            str(self.device),
            state.history,
        )

    def _recalibrate_batch_norm(self) -> None:
        """Batch-norm statistics over plain crops with the final weights (see `recalibrate_batch_norm`)."""
        plan = self._plan(torch.Generator().manual_seed(self.settings.train.seed))
        plan = plan[: max(1, RECALIBRATION_CROPS // max(1, self.batch_size))]
        batches = load_in_background(self.data.reader, self.data.placements, plan, self.crop_frames, 0)
        recalibrate_batch_norm(self.model, (batch.views[0].to(self.device) for batch in batches))
        self.model.eval()

    def _summary(self) -> dict[str, Any]:
        """What the model file records about the training that made it."""
        state, settings = self.state, self.settings
        last = state.history[-1] if state.history else {}
        kept = best_epoch(state.history) if self.best_model is not None else None
        if kept is not None and state.stopped is not None:
            last = state.history[kept - 1]
        return {
            "epochs": state.epoch,
            "steps": state.global_step,
            "seconds": round(self.elapsed, 1),
            "trained_at": time.time(),
            "tracks": len(state.train_rows),
            "val_segment_top1": last.get("val_segment_top1"),
            "train_loss": last.get("train_loss"),
            "settings": settings.train.model_dump(mode="json"),
            "augment": settings.augment.model_dump(mode="json"),
        }

    def _stop_reason(self, budget_spent: bool) -> str | None:
        """Why the run stops after this epoch, or None to go on (the epoch cap is the loop's)."""
        if budget_spent:
            return "time budget"
        if self.length.open_ended and self._cooled_down():
            return "no longer improving" if self.state.plateau_epoch is not None else "ceiling"
        return None

    def _cooled_down(self) -> bool:
        return self.length.open_ended and self.state.global_step >= self.state.cooldown[1]

    def _watch_plateau(self) -> None:
        """Open-ended runs: once validation retrieval stops improving, start the final cool-down (all ranks)."""
        state, train = self.state, self.settings.train
        if not self.length.open_ended or state.plateau_epoch is not None or state.global_step >= state.cooldown[0]:
            return
        found = self.ranks.is_main and no_longer_improving(
            state.history, train.patience, state.global_step, train.min_steps
        )
        if not distributed.any_rank(found, self.device):
            return
        state.plateau_epoch = state.epoch
        state.cooldown = plateau_cooldown(state.global_step, self.steps_per_epoch, self.length.ceiling_steps)
        self.notify(
            f"validation retrieval has not improved for {train.patience} epochs: "
            f"lowering the learning rate to zero over {state.cooldown[1] - state.global_step} steps, then stopping"
        )

    def _remember_if_best(self) -> None:
        """Open-ended runs keep a copy of the weights of the epoch with the best validation retrieval."""
        if self.length.open_ended and best_epoch(self.state.history) == self.state.epoch:
            self.best_model = {name: value.detach().cpu().clone() for name, value in self.model.state_dict().items()}

    def _keep_best_weights(self) -> None:
        if self.best_model is None or not self.length.open_ended:
            return
        kept = best_epoch(self.state.history)
        self.model.load_state_dict(self.best_model)
        score = self.state.history[kept - 1]["val_segment_top1"]
        self.notify(f"keeping the weights of epoch {kept}, the best validation retrieval ({score:.3f})")

    def _time_step(self, seconds: float) -> None:
        """Time the first steps of this process, then say how long the run should take."""
        if self.timed_steps < 0:
            return
        self.timed_steps += 1
        self.timed_seconds += seconds
        if self.timed_steps == TIMING_STEPS:
            per_step = self.timed_seconds / TIMING_STEPS
            train, done = self.settings.train, self.state.global_step
            self.notify(describe_expected_duration(self.length, train, self.steps_per_epoch, done, per_step))
            self.timed_steps = -1

    def _budget_spent(self) -> bool:
        minutes = self.settings.train.minutes
        return distributed.any_rank(bool(minutes) and self.elapsed >= minutes * 60, self.device)

    def _train_epoch(self, on_step: Callable[[StepEvent], None] | None) -> int:
        self.plan_generator.set_state(self.state.epoch_plan_state)
        plan = self._plan(self.plan_generator)
        self.next_plan_state = self.plan_generator.get_state()
        self.network.train()
        losses: list[float] = []
        clips, started = 0, time.perf_counter()
        last = started
        batches = load_in_background(
            self.data.reader,
            self.data.placements,
            plan[self.state.step_in_epoch :],
            self.crop_frames,
            min(self.settings.train.loader_workers, thread_limit()),
            pin_memory=self.device.type == "cuda",
        )
        for batch in batches:
            losses.append(self._step(batch.views, self.data.labels[batch.rows.numpy()]))
            clips += len(batch.rows)
            self.state.step_in_epoch += 1
            self.state.global_step += 1
            now = time.perf_counter()
            self._time_step(now - last)
            last = now
            if on_step is not None and self.ranks.is_main:
                rate = clips * self.ranks.world / max(time.perf_counter() - started, 1e-9)
                epochs = self.length.epochs
                on_step(StepEvent(self.state.epoch + 1, epochs, self.state.step_in_epoch, len(plan), losses[-1], rate))
            if self._budget_spent() or self._cooled_down():
                break
        self.train_loss = float(np.mean(losses)) if losses else float("nan")
        return clips

    def _step(self, views: tuple[torch.Tensor, torch.Tensor], labels: np.ndarray) -> float:
        train = self.settings.train
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        augmented = [self.augmenter(v.to(self.device, non_blocking=True), self.view_generator) for v in views]
        with autocast(self.device, train.precision, training=True):
            _, z = self.network(torch.cat(augmented))
        loss = self._loss(z.float(), labels, len(augmented))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.grad_clip)
        self.optimizer.step()
        return distributed.mean_over_ranks(float(loss.detach()), self.device)

    def _loss(self, z: torch.Tensor, labels: np.ndarray, views: int) -> torch.Tensor:
        """The loss of the projections `z` [views * B, D] (view-major): the chosen pair loss for two views; for
        more (multi-crop), the supervised contrastive loss with the label (or, without, the track) as class."""
        train = self.settings.train
        if views > 2:
            classes = torch.from_numpy(labels).to(self.device)  # [B]
            return distributed.global_multi_view_loss(z, classes, views, train.temperature)
        z1, z2 = z.chunk(2)
        label_tensor = torch.from_numpy(labels).to(self.device) if train.loss == "supcon" else None
        return distributed.global_contrastive_loss(train.loss, z1, z2, train.temperature, label_tensor)

    def _end_epoch(self) -> None:
        """Validate, log, and checkpoint (main process only); the next epoch starts from a fresh plan."""
        state = self.state
        state.epoch += 1
        state.step_in_epoch = 0
        state.epoch_plan_state = self.next_plan_state
        if self.ranks.is_main:
            record = self._epoch_record()
            state.history.append(record)
            _append_jsonl(self.home.metrics_log, record)
            self.notify(_describe_epoch(record, self.length.epochs))
            self._remember_if_best()
        self._watch_plateau()
        if self.ranks.is_main:
            save_resume_point(self.home, self._resume_point())
            save_epoch_model(self.home, self.settings, self.model, self._summary())
        distributed.barrier()

    def _epoch_record(self) -> dict[str, Any]:
        record = {
            "epoch": self.state.epoch,
            "step": self.state.global_step,
            "train_loss": self.train_loss,
            "lr": self.learning_rate(),
            "elapsed_seconds": round(self.elapsed, 2),
        }
        if self.validation is not None:
            train = self.settings.train
            loss, top1 = validate(self.model, self.validation, self.device, train.loss, train.temperature)
            record.update(val_loss=loss, val_segment_top1=top1)
        return record


@torch.no_grad()
def recalibrate_batch_norm(network: torch.nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate every batch norm's statistics over `batches` of plain (unaugmented) crops.

    The running averages kept during training trail the weights and are far from settled after a short run;
    the statistics used at inference should describe the model that is shipped.
    """
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the recalibration batches
    network.eval()
    for norm in norms:
        norm.train()
    for batch in batches:
        network(batch)
    for norm in norms:
        norm.momentum = 0.1
    network.eval()


def _describe_epoch(record: dict[str, Any], epochs: int | None) -> str:
    text = f"epoch {record['epoch']}{f'/{epochs}' if epochs else ''}: loss {record['train_loss']:.3f}"
    if "val_segment_top1" in record:
        text += f", validation loss {record['val_loss']:.3f}, segment retrieval {record['val_segment_top1']:.3f}"
    return text


def _append_jsonl(path: Any, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")
