"""Several processes: `torchrun --nproc-per-node 2 -m musimilar train` with the gloo backend on the CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musimilar.checkpoint import load_model
from musimilar.convert import convert
from musimilar.embed import embed_library
from musimilar.embeddings import load_embeddings
from musimilar.home import Home
from musimilar.settings import load_settings

TINY_CONFIG = """
[model]
channels = [8, 16, 32]
[augment]
crop_seconds = 1.5
[train]
epochs = 2
batch_size = 8
crops_per_track = 2
val_fraction = 0.2
loader_workers = 1
"""


def test_two_processes_train_a_model_that_loads_and_embeds(synth_library: tuple[Path, list], tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    home = Home.open(tmp_path / "home")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    convert(home, [synth_library[0]], load_settings(config), workers=1)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MUSIMILAR_HOME": str(home.root)}
    completed = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "musimilar",
            "train",
            "--config",
            str(config),
            "--device",
            "cpu",
            "--no-index",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count('"fingerprint"') == 1  # only the main process reports
    model = load_model(home.current_model_path)
    assert model.training["epochs"] == 2
    report = embed_library(home, device_name="cpu")
    assert report.embedded == len(synth_library[1])
    vectors = np.asarray(load_embeddings(home.embeddings_dir).vectors)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
