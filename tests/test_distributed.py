"""Several processes: `torchrun --nproc-per-node 2 -m musimilar train` with the gloo backend on the CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import distributed_step as case
import numpy as np
import pytest
import torch

from musimilar.checkpoint import load_model
from musimilar.convert import convert
from musimilar.distributed import GlobalBatchNorm, Ranks, check_batch_size, local_batch_norm, synchronise_batch_norm
from musimilar.embed import embed_library
from musimilar.embeddings import load_embeddings
from musimilar.errors import SettingsError
from musimilar.home import Home
from musimilar.losses import nt_xent
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


def test_two_processes_step_as_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    """Global negatives and global batch norm: loss, gradients and statistics of a 2-process step equal those of
    one process on the concatenated batch, for every loss and for an uneven split."""

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    output = tmp_path / "steps.pt"
    path = os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    script = Path(case.__file__)
    completed = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", str(script), str(output)],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    distributed_results = torch.load(output, weights_only=True)
    for loss_name, batch in case.CASES:
        model = case.fresh_model()
        views, labels = case.case_inputs(batch, loss_name)
        loss = case.step(model, views, labels, loss_name).detach()
        got = distributed_results[f"{loss_name}/{batch}"]
        assert got["loss"] == pytest.approx(float(loss), rel=1e-9), loss_name
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(got["gradients"][name], parameter.grad, rtol=1e-7, atol=1e-10, msg=name)
        for name, buffer in model.named_buffers():
            torch.testing.assert_close(got["statistics"][name], buffer, rtol=1e-7, atol=1e-10, msg=name)


def test_two_processes_without_global_negatives_would_differ() -> None:
    """The check above can fail: each process's loss on its own half is not the loss of the whole batch."""

    (first, second), _ = case.case_inputs(8, "ntxent")
    with torch.no_grad():
        _, z = case.fresh_model()(torch.cat([first, second]))
    z1, z2 = z.chunk(2)
    halves = (nt_xent(z1[:4], z2[:4], case.TEMPERATURE) + nt_xent(z1[4:], z2[4:], case.TEMPERATURE)) / 2
    assert float(halves) != pytest.approx(float(nt_xent(z1, z2, case.TEMPERATURE)), rel=1e-3)


def test_batch_size_is_global_and_must_split_evenly() -> None:

    check_batch_size(8, Ranks(rank=0, world=2))
    with pytest.raises(SettingsError, match="9 is not divisible by the 2 processes"):
        check_batch_size(9, Ranks(rank=0, world=2))


def test_global_batch_norm_swaps_in_and_out_keeping_weights_and_statistics() -> None:

    model = case.fresh_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    parameters = list(model.parameters())
    synchronise_batch_norm(model)
    assert sum(isinstance(m, GlobalBatchNorm) for m in model.modules()) == 5  # input, 2 blocks, output, head
    assert list(model.parameters()) == parameters  # the optimizer's tensors are kept
    (first, _), _ = case.case_inputs(6, "ntxent")
    plain = case.fresh_model()
    torch.testing.assert_close(model(first)[1], plain(first)[1])  # one process: a plain batch norm
    local_batch_norm(model)
    assert not any(isinstance(m, GlobalBatchNorm) for m in model.modules())
    assert type(model.encoder.output_norm) is torch.nn.BatchNorm1d
    assert model.state_dict().keys() == before.keys()
    torch.testing.assert_close(model.state_dict(), plain.state_dict())
