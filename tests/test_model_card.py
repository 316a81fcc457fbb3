"""The model card: queries for library tracks read the model's fingerprint without torch, never a stale one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musimilar.library import Library
from musimilar.model_card import card_path, read_card

QUERY_WITHOUT_TORCH = """
import sys
from pathlib import Path
from musimilar.library import Library
library = Library.open(Path(sys.argv[1]), create=False)
found = library.recommend([sys.argv[2]], 5)
print(len(found), "torch" in sys.modules)
"""


@pytest.fixture
def home_copy(trained_home, tmp_path: Path) -> Path:
    home, _, _ = trained_home
    copy = tmp_path / "home"
    shutil.copytree(home.root, copy)
    return copy


def test_training_writes_a_card_that_matches_the_model(trained_home) -> None:
    home, _, _ = trained_home
    with Library.open(home.root, create=False) as library:
        assert read_card(home.current_model_path).fingerprint == library.ready().model.fingerprint


def test_a_query_for_a_library_track_never_imports_torch(home_copy: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", QUERY_WITHOUT_TORCH, str(home_copy), "3"], capture_output=True, text=True, check=True
    )
    assert run.stdout.split() == ["5", "False"]


def test_a_query_for_a_file_from_outside_loads_the_model(trained_home, home_copy: Path, tmp_path: Path) -> None:
    _, _, tracks = trained_home
    outside = tmp_path / "outside.wav"
    shutil.copyfile(tracks[0].path, outside)
    run = subprocess.run(
        [sys.executable, "-c", QUERY_WITHOUT_TORCH, str(home_copy), str(outside)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.split() == ["5", "True"]


def test_a_card_that_describes_other_contents_is_ignored(home_copy: Path) -> None:
    model = home_copy / "models" / "current.pt"
    card = json.loads(card_path(model).read_text())
    card_path(model).write_text(json.dumps({**card, "fingerprint": "0" * 16, "file_blake2b": "f" * 32}))
    assert read_card(model) is None
    with Library.open(home_copy, create=False) as library:  # the fingerprint comes from the model: still ready
        assert len(library.recommend(["3"], 5)) == 5


def test_a_home_without_cards_still_answers(home_copy: Path) -> None:
    card_path(home_copy / "models" / "current.pt").unlink()
    with Library.open(home_copy, create=False) as library:
        assert len(library.recommend(["3"], 5)) == 5


def test_a_cold_file_query_decodes_while_the_model_loads_and_embeds_the_same(
    trained_home, home_copy: Path, tmp_path: Path
) -> None:
    _, _, tracks = trained_home
    outside = tmp_path / "outside.wav"
    shutil.copyfile(tracks[5].path, outside)
    with Library.open(home_copy, create=False) as library:
        ready = library.ready()
        cold = ready.query_vector(str(outside)).raw  # decoded on a thread while the model loaded
        warm = ready.query_vector(str(outside)).raw  # the model already loaded: decoded on this thread
    assert cold is not None and warm is not None
    np.testing.assert_array_equal(cold, warm)


STATUS_WITHOUT_TORCH = """
import sys
from pathlib import Path
from musimilar.home import Home
from musimilar.status import home_status
status = home_status(Home(Path(sys.argv[1])))
print(status["model"]["fingerprint"], status["model"]["epochs"], "torch" in sys.modules)
"""


def test_status_reads_the_model_summary_from_the_card_without_torch(home_copy: Path) -> None:
    from musimilar.home import Home
    from musimilar.status import home_status

    from_card = home_status(Home(home_copy))["model"]
    run = subprocess.run(
        [sys.executable, "-c", STATUS_WITHOUT_TORCH, str(home_copy)], capture_output=True, text=True, check=True
    )
    assert run.stdout.split() == [from_card["fingerprint"], str(from_card["epochs"]), "False"]
    card_path(home_copy / "models" / "current.pt").unlink()  # no card: the same summary, read from the file
    assert home_status(Home(home_copy))["model"] == from_card
    assert from_card["epochs"] >= 1 and from_card["size"] is not None
