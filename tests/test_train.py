"""Training: a short run learns, checkpoints reload and embed identically, and an interrupted run resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from musimilar.checkpoint import load_model, read_model_file
from musimilar.convert import convert
from musimilar.embed import embed_library
from musimilar.embeddings import load_embeddings
from musimilar.errors import NotReadyError
from musimilar.home import Home
from musimilar.settings import load_settings
from musimilar.train import train

FAST = {
    "train.epochs": 2,
    "train.batch_size": 12,
    "train.crops_per_track": 2,
    "train.val_fraction": 0.25,
    "augment.crop_seconds": 1.5,
    "model.channels": (8, 16, 32),
    "train.loader_workers": 1,
}


@pytest.fixture(scope="module")
def converted_home(synth_library: tuple[Path, list], tmp_path_factory: pytest.TempPathFactory) -> Home:
    directory, _ = synth_library
    home = Home.open(tmp_path_factory.mktemp("train-home"))
    convert(home, [directory], load_settings(flags=FAST), workers=1)
    return home


def copy_home(home: Home, destination: Path) -> Home:
    shutil.copytree(home.root, destination)
    return Home.open(destination)


def test_short_training_learns_and_publishes_a_model(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    settings = load_settings(flags={**FAST, "train.epochs": 4})
    report = train(home, settings)
    assert report.epochs == 4 and report.stopped == "completed"
    losses = [record["train_loss"] for record in report.history]
    assert losses[-1] < losses[0]
    held_out = report.validation_tracks
    chance = 1 / held_out
    assert report.history[-1]["val_segment_top1"] > 2 * chance
    assert home.current_model_path.is_file()
    lines = home.metrics_log.read_text().splitlines()
    assert len(lines) == 4


def test_checkpoint_reloads_with_weights_only_and_embeds_identically(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    train(home, load_settings(flags={**FAST, "train.epochs": 1}))
    payload = torch.load(home.current_model_path, weights_only=True)
    assert payload["format"] == "musimilar-model" and payload["mel"]["n_mels"] == 128
    first = load_model(home.current_model_path)
    embed_library(home, device_name="cpu")
    stored = np.array(load_embeddings(home.embeddings_dir).vectors)
    shutil.rmtree(home.embeddings_dir)
    embed_library(home, device_name="cpu")
    again = np.array(load_embeddings(home.embeddings_dir).vectors)
    np.testing.assert_allclose(stored, again, atol=1e-6)
    second = load_model(home.current_model_path)
    assert first.fingerprint == second.fingerprint == read_model_file(home.current_model_path)["fingerprint"]


def test_the_model_file_ships_the_projection_head_and_its_output_is_the_vector(
    converted_home: Home, tmp_path: Path
) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    settings = load_settings(flags={**FAST, "train.epochs": 1, "model.projection_dim": 24})
    train(home, settings)
    payload = read_model_file(home.current_model_path)
    assert payload["format_version"] == 2 and any(name.startswith("head.") for name in payload["network"])
    embed_library(home, device_name="cpu")
    table = load_embeddings(home.embeddings_dir)
    assert table.dim == load_model(home.current_model_path).dim == 24


def test_a_format_1_model_file_embeds_with_its_encoder_output(converted_home: Home, tmp_path: Path) -> None:
    """Files written before the head shipped hold the encoder alone; they load, and their vectors stay as they were."""
    home = copy_home(converted_home, tmp_path / "home")
    train(home, load_settings(flags={**FAST, "train.epochs": 1}))
    payload = read_model_file(home.current_model_path)
    network = payload.pop("network")
    encoder_state = {name[len("encoder.") :]: t for name, t in network.items() if name.startswith("encoder.")}
    old = home.root / "old.pt"
    torch.save({**payload, "format_version": 1, "encoder": encoder_state}, old)
    loaded = load_model(old)
    assert loaded.dim == FAST["model.channels"][-1] and loaded.fingerprint == payload["fingerprint"]
    crops = torch.randn(3, 128, 40)
    expected = torch.nn.functional.normalize(loaded.network.encoder(crops), dim=1)
    torch.testing.assert_close(loaded.network.embed(crops), expected)


def test_interrupted_run_resumes_from_the_same_step(converted_home: Home, tmp_path: Path) -> None:
    settings = load_settings(flags=FAST)
    straight = copy_home(converted_home, tmp_path / "straight")
    whole = train(straight, settings)

    interrupted = copy_home(converted_home, tmp_path / "interrupted")
    steps_seen = []

    def stop_at_third_step(event) -> None:
        steps_seen.append(event.step)
        if len(steps_seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(interrupted, settings, on_step=stop_at_third_step)
    assert not interrupted.current_model_path.exists()
    resumed_steps = []
    resumed = train(interrupted, settings, resume=True, on_step=lambda event: resumed_steps.append(event.step))
    assert len(resumed_steps) == whole.steps - 3
    assert resumed.steps == whole.steps
    a = load_model(straight.current_model_path).network.state_dict()
    b = load_model(interrupted.current_model_path).network.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)


def test_resume_without_an_interrupted_run_is_a_clear_error(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    with pytest.raises(NotReadyError, match="no interrupted training run"):
        train(home, load_settings(flags=FAST), resume=True)


def test_time_budget_ends_training_cleanly(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    report = train(home, load_settings(flags={**FAST, "train.epochs": 1000, "train.minutes": 0.05}))
    assert report.stopped == "time budget"
    assert report.epochs < 1000
    assert home.current_model_path.is_file()


def test_small_library_lowers_the_batch_size_and_says_so(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    messages: list[str] = []
    report = train(
        home, load_settings(flags={**FAST, "train.epochs": 1, "train.batch_size": 256}), notify=messages.append
    )
    assert report.batch_size == report.train_tracks
    assert any("fewer than the batch size" in m for m in messages)


def test_supcon_uses_folder_labels(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    report = train(home, load_settings(flags={**FAST, "train.epochs": 1, "train.loss": "supcon", "train.by": "folder"}))
    assert np.isfinite(report.history[-1]["train_loss"])


def open_ended(**changes: object) -> dict:
    """FAST without an epoch count: the run stops by itself."""
    flags = {key: value for key, value in FAST.items() if key != "train.epochs"}
    return {**flags, "train.min_steps": 4, "train.patience": 2, "train.ceiling_epochs": 12, **changes}


def test_open_ended_run_stops_on_a_plateau_or_the_ceiling_and_keeps_the_best_epoch(
    converted_home: Home, tmp_path: Path
) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    messages: list[str] = []
    report = train(home, load_settings(flags=open_ended()), notify=messages.append)
    assert report.stopped in ("no longer improving", "ceiling")
    assert any(m.startswith("expected duration: at most") for m in messages)
    scores = [record["val_segment_top1"] for record in report.history]
    kept = read_model_file(home.current_model_path)["training"]["val_segment_top1"]
    assert kept == max(scores)
    if report.stopped == "no longer improving":
        assert any("has not improved for 2 epochs" in m for m in messages)


def test_without_validation_the_ceiling_is_the_minimum_steps(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    report = train(home, load_settings(flags=open_ended(**{"train.val_fraction": 0.0, "train.min_steps": 5})))
    assert report.stopped == "ceiling" and report.steps == 5


def test_a_finished_run_continues_with_more_epochs_or_minutes(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    first = train(home, load_settings(flags=FAST))
    with pytest.raises(NotReadyError, match=r"finished \(completed\).*--resume --minutes M"):
        train(home, load_settings(flags={**FAST, "train.epochs": None}), resume=True)
    with pytest.raises(NotReadyError, match="--epochs must be above that"):
        train(home, load_settings(flags=FAST), resume=True)
    more = train(home, load_settings(flags={**FAST, "train.epochs": 3}), resume=True)
    assert (more.epochs, more.stopped) == (3, "completed")
    assert more.steps == first.steps * 3 // 2
    extended = train(home, load_settings(flags={**FAST, "train.epochs": None, "train.minutes": 0.02}), resume=True)
    assert extended.stopped == "time budget" and extended.epochs >= 4


def test_multi_crop_trains_several_crops_of_each_track(converted_home: Home, tmp_path: Path) -> None:
    home = copy_home(converted_home, tmp_path / "home")
    report = train(home, load_settings(flags={**FAST, "train.epochs": 1, "train.views_per_track": 3}))
    assert report.stopped == "completed" and np.isfinite(report.history[-1]["train_loss"])


def test_plan_draws_one_start_per_view_and_each_track_once_per_batch() -> None:
    from musimilar.batches import plan_epoch

    frames = np.array([100, 50, 10, 300, 80])
    plan = plan_epoch(frames, 20, 2, 3, torch.Generator().manual_seed(0), views=4)
    assert all(p.starts.shape == (len(p.rows), 4) for p in plan)
    assert all(len(set(p.rows.tolist())) == len(p.rows) for p in plan)
    for planned in plan:
        room = np.maximum(frames[planned.rows] - 20, 0)
        assert np.all((planned.starts >= 0) & (planned.starts <= room[:, None]))
