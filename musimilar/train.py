"""Self-supervised training on the cached log-mels: the loop, the schedule, resume and validation."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from musimilar import distributed
from musimilar.augment import Augmenter
from musimilar.batches import load_in_background, plan_epoch
from musimilar.cache import CacheReader
from musimilar.catalog import Catalog, Placement
from musimilar.devices import autocast_dtype, pick_device
from musimilar.encoder import ContrastiveModel
from musimilar.errors import NotReadyError
from musimilar.home import Home
from musimilar.labels import label_of
from musimilar.mel import frames_per_second
from musimilar.resume import ResumeState, load_resume_state, publish_model, save_epoch_model, save_resume_state
from musimilar.settings import Settings
from musimilar.threads import thread_limit
from musimilar.validation import DISTRACTOR_TRACKS, split_tracks, validate, validation_set

Notify = Callable[[str], None]
RECALIBRATION_CROPS = 2048  # crops that re-estimate the batch-norm statistics of the shipped model


@dataclass
class StepEvent:
    epoch: int  # 1-based
    epochs: int
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
    stopped: str  # "completed", "time budget"
    seconds: float
    clips_per_second: float
    batch_size: int
    train_tracks: int
    validation_tracks: int
    device: str
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Library:
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
    state = load_resume_state(home, settings) if resume else None
    if state is not None:
        settings = state.settings_for(settings)
    library = _open_library(home, settings)
    run = _Run(home, settings, library, device, ranks, state, notify)
    try:
        return run.fit(on_step)
    finally:
        distributed.stop()


def _open_library(home: Home, settings: Settings) -> Library:
    from musimilar.convert import CACHE_KEY, cache_directory
    from musimilar.mel import preprocessing_fingerprint

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
    names = [label_of(tracks[i], by) if by else None for i in ids]
    if settings.train.loss == "supcon" and not any(names):
        raise NotReadyError(f"--loss supcon needs labels: no track has a '{by}' label (set --by)")
    codes = {name: code for code, name in enumerate(sorted({n for n in names if n}))}
    labels = np.array([codes[n] if n else len(codes) + row for row, n in enumerate(names)], dtype=np.int64)
    reader = CacheReader(cache_directory(home, settings), settings.mel.n_mels)
    return Library(ids, [placements[i] for i in ids], labels, reader)


class _Run:
    """One training run's state; `fit` drives it."""

    def __init__(
        self,
        home: Home,
        settings: Settings,
        library: Library,
        device: torch.device,
        ranks: distributed.Ranks,
        state: ResumeState | None,
        notify: Notify,
    ) -> None:
        self.home, self.settings, self.library, self.device, self.ranks = home, settings, library, device, ranks
        self.notify = notify if ranks.is_main else (lambda text: None)
        train = settings.train
        torch.manual_seed(train.seed + ranks.rank)
        self.crop_frames = max(
            16, round(settings.augment.crop_seconds * frames_per_second(settings.audio, settings.mel))
        )
        self.train_rows, self.val_rows = (
            (state.train_rows, state.val_rows)
            if state
            else split_tracks(len(library.track_ids), train.val_fraction, train.seed)
        )
        self.batch_size = self._batch_size()
        self.model = ContrastiveModel(settings.model).to(device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        self.augmenter = Augmenter(settings.augment)
        self.plan_generator = torch.Generator().manual_seed(train.seed)
        self.view_generator = torch.Generator(device=device).manual_seed(train.seed + 1000 + ranks.rank)
        self.steps_per_epoch = len(self._plan(torch.Generator().manual_seed(0)))
        self.total_steps = train.epochs * self.steps_per_epoch
        self.epoch, self.step_in_epoch, self.global_step, self.elapsed_before = 0, 0, 0, 0.0
        self.started = time.perf_counter()
        self.history: list[dict[str, Any]] = []
        self.epoch_plan_state = self.plan_generator.get_state()
        if state is not None:
            state.restore(self)
        self.network = self._wrap()
        self.validation = (
            validation_set(
                library.reader,
                [library.placements[r] for r in self.val_rows],
                self.crop_frames,
                [library.placements[r] for r in self.train_rows[:DISTRACTOR_TRACKS]],
            )
            if len(self.val_rows) and ranks.is_main
            else None
        )

    def _batch_size(self) -> int:
        wanted = self.settings.train.batch_size
        count = len(self.train_rows)
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
        frames = np.array([self.library.placements[r].frames for r in self.train_rows])
        plan = plan_epoch(frames, self.crop_frames, self.batch_size, self.settings.train.crops_per_track, generator)
        for planned in plan:  # each rank trains on its own slice of every batch
            planned.rows = self.train_rows[planned.rows[self.ranks.rank :: self.ranks.world]]
            planned.starts = planned.starts[self.ranks.rank :: self.ranks.world]
        return plan

    @property
    def elapsed(self) -> float:
        """Seconds this run has trained, across interruptions."""
        return self.elapsed_before + time.perf_counter() - self.started

    def learning_rate(self) -> float:
        """Linear warm-up, then cosine decay to zero, over the run's steps or its time budget, whichever ends first."""
        train = self.settings.train
        progress = self.global_step / max(1, self.total_steps)
        if train.minutes:
            progress = max(progress, self.elapsed / (train.minutes * 60))
        progress = min(progress, 1.0)
        if progress < train.warmup_fraction:
            return train.lr * max(progress / train.warmup_fraction, 1.0 / max(1, self.total_steps))
        decay = (progress - train.warmup_fraction) / max(1e-9, 1 - train.warmup_fraction)
        return train.lr * 0.5 * (1 + math.cos(math.pi * decay))

    def fit(self, on_step: Callable[[StepEvent], None] | None) -> TrainReport:
        stopped = "completed"
        train = self.settings.train
        clips = 0
        try:
            while self.epoch < train.epochs:
                clips += self._train_epoch(on_step)
                if self._budget_spent():
                    stopped = "time budget"
                    self._end_epoch()
                    break
                self._end_epoch()
        except KeyboardInterrupt:
            if self.ranks.is_main:
                save_resume_state(self.home, self)
                self.notify(
                    f"training interrupted at epoch {self.epoch + 1}, step {self.step_in_epoch}: "
                    "resume with `musimilar train --resume`"
                )
            raise
        rate = clips * self.ranks.world / max(self.elapsed, 1e-9)
        distributed.local_batch_norm(self.model)
        if self.ranks.is_main:
            self._recalibrate_batch_norm()
        model_path, fingerprint = publish_model(self.home, self) if self.ranks.is_main else ("", "")
        distributed.barrier()
        return TrainReport(
            str(model_path),
            fingerprint,
            self.epoch,
            self.global_step,
            stopped,
            self.elapsed,
            rate,
            self.batch_size,
            len(self.train_rows),
            len(self.val_rows),
            str(self.device),
            self.history,
        )

    @torch.no_grad()
    def _recalibrate_batch_norm(self) -> None:
        """Re-estimate every batch norm's statistics over plain (unaugmented) crops with the final weights.

        The running averages kept during training trail the weights and are far from settled after a short run;
        the statistics used at inference should describe the model that is shipped.
        """
        norms = [m for m in self.model.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        plan = self._plan(torch.Generator().manual_seed(self.settings.train.seed))
        plan = plan[: max(1, RECALIBRATION_CROPS // max(1, self.batch_size))]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the recalibration batches
        self.model.eval()
        for norm in norms:
            norm.train()
        for batch in load_in_background(self.library.reader, self.library.placements, plan, self.crop_frames, 0):
            self.model.encoder(batch.views[0].to(self.device))
        for norm in norms:
            norm.momentum = 0.1
        self.model.eval()

    def _budget_spent(self) -> bool:
        minutes = self.settings.train.minutes
        return distributed.any_rank(bool(minutes) and self.elapsed >= minutes * 60, self.device)

    def _train_epoch(self, on_step: Callable[[StepEvent], None] | None) -> int:
        self.plan_generator.set_state(self.epoch_plan_state)
        plan = self._plan(self.plan_generator)
        self.next_plan_state = self.plan_generator.get_state()
        self.network.train()
        losses: list[float] = []
        clips, started = 0, time.perf_counter()
        threads = min(self.settings.train.loader_workers, thread_limit())
        batches = load_in_background(
            self.library.reader,
            self.library.placements,
            plan[self.step_in_epoch :],
            self.crop_frames,
            threads,
            pin_memory=self.device.type == "cuda",
        )
        for batch in batches:
            losses.append(self._step(batch.views, self.library.labels[batch.rows.numpy()]))
            clips += len(batch.rows)
            self.step_in_epoch += 1
            self.global_step += 1
            if on_step is not None and self.ranks.is_main:
                rate = clips / max(time.perf_counter() - started, 1e-9)
                on_step(
                    StepEvent(
                        self.epoch + 1,
                        self.settings.train.epochs,
                        self.step_in_epoch,
                        len(plan),
                        losses[-1],
                        rate * self.ranks.world,
                    )
                )
            if self._budget_spent():
                break
        self.train_loss = float(np.mean(losses)) if losses else float("nan")
        return clips

    def _step(self, views: tuple[torch.Tensor, torch.Tensor], labels: np.ndarray) -> float:
        train = self.settings.train
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        first, second = (self.augmenter(v.to(self.device, non_blocking=True), self.view_generator) for v in views)
        with torch.autocast(
            self.device.type,
            dtype=autocast_dtype(self.device) or torch.float32,
            enabled=autocast_dtype(self.device) is not None,
        ):
            _, z = self.network(torch.cat([first, second]))
        z1, z2 = z.float().chunk(2)
        label_tensor = torch.from_numpy(labels).to(self.device) if train.loss == "supcon" else None
        loss = distributed.global_contrastive_loss(train.loss, z1, z2, train.temperature, label_tensor)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.grad_clip)
        self.optimizer.step()
        return distributed.mean_over_ranks(float(loss.detach()), self.device)

    def _end_epoch(self) -> None:
        """Validate, log, and checkpoint (main process only); the next epoch starts from a fresh plan."""
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_plan_state = self.next_plan_state
        if self.ranks.is_main:
            record = {
                "epoch": self.epoch,
                "step": self.global_step,
                "train_loss": self.train_loss,
                "lr": self.learning_rate(),
                "elapsed_seconds": round(self.elapsed, 2),
            }
            if self.validation is not None:
                loss, top1 = validate(
                    self.model, self.validation, self.device, self.settings.train.loss, self.settings.train.temperature
                )
                record.update(val_loss=loss, val_segment_top1=top1)
            self.history.append(record)
            _append_jsonl(self.home.metrics_log, record)
            self.notify(_describe_epoch(record, self.settings.train.epochs))
            save_resume_state(self.home, self)
            save_epoch_model(self.home, self)
        distributed.barrier()


def _describe_epoch(record: dict[str, Any], epochs: int) -> str:
    text = f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.3f}"
    if "val_segment_top1" in record:
        text += f", validation loss {record['val_loss']:.3f}, segment retrieval {record['val_segment_top1']:.3f}"
    return text


def _append_jsonl(path: Any, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def report_as_dict(report: TrainReport) -> dict[str, Any]:
    return asdict(report)
