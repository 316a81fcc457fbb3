"""Fixtures of the server tests: a served copy of the trained home, and the app's ASGI test client."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

LOCAL_URL = "http://127.0.0.1:8765"


@pytest.fixture(autouse=True)
def no_musimilar_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server sees no MUSIMILAR_* variable of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("MUSIMILAR_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def served_home(trained_home, tmp_path_factory: pytest.TempPathFactory):
    """(home root, library folder, tracks): a copy of the trained home the server tests may write a map into."""
    home, library, tracks = trained_home
    root = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(home.root, root)
    return root, library, tracks


def open_library(root: Path):
    from musimilar.library import Library

    return Library.open(root, create=False)


def make_client(root: Path, **app_options) -> TestClient:
    from musimilar.serve.app import create_app

    return TestClient(create_app(lambda: open_library(root), **app_options), base_url=LOCAL_URL)


@pytest.fixture
def client_for():
    """make_client, for tests that need an app of their own (other options, a token)."""
    return make_client


@pytest.fixture(scope="module")
def client(served_home) -> Iterator[TestClient]:
    with make_client(served_home[0]) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def track_ids(client: TestClient) -> list[int]:
    return [t["track_id"] for t in client.get("/api/tracks", params={"limit": 500}).json()["tracks"]]
