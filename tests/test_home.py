from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from musimilar.errors import EXIT_BUSY, HomeBusyError, MusimilarError
from musimilar.home import HOME_ENV, Home, atomic_path, atomic_write_text, default_home, resolve_home

# Holds the home's lock until its stdin closes; says "held" once it has it.
LOCK_HOLDER = """
import sys
from pathlib import Path
from musimilar.home import Home

with Home(Path(sys.argv[1])).exclusive("holder-job"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_resolve_home_prefers_the_option_then_the_environment_then_the_default(tmp_path: Path) -> None:
    option, variable = tmp_path / "option", tmp_path / "variable"
    environ = {HOME_ENV: str(variable), "XDG_DATA_HOME": str(tmp_path / "data")}

    assert resolve_home(option, environ) == option.resolve()
    assert resolve_home(None, environ) == variable.resolve()
    assert resolve_home(None, {"XDG_DATA_HOME": str(tmp_path / "data")}) == default_home(
        {"XDG_DATA_HOME": str(tmp_path / "data")}
    )
    assert resolve_home(None, {HOME_ENV: ""}) == default_home({})  # an empty variable counts as unset


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG data directory is the Linux default")
def test_default_home_follows_xdg_data_home(tmp_path: Path) -> None:
    assert default_home({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "musimilar"
    assert default_home({}) == Path.home() / ".local" / "share" / "musimilar"


def test_resolve_home_expands_user_and_relative_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_home(Path("relative")) == tmp_path.resolve() / "relative"
    assert resolve_home(Path("~/lib")) == tmp_path.resolve() / "lib"


def test_open_creates_or_refuses(tmp_path: Path) -> None:
    with pytest.raises(MusimilarError, match="no library home here"):
        Home.open(tmp_path / "absent", create=False)
    home = Home.open(tmp_path / "new" / "home")
    assert home.root.is_dir()
    assert home.catalog_path.parent == home.root
    assert Home.open(home.root, create=False) == home


def test_exclusive_fails_at_once_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    home = Home.open(tmp_path / "home")
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(home.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(HomeBusyError) as caught:
            with home.exclusive("convert"):
                pytest.fail("the lock was granted twice")
        assert "holder-job" in str(caught.value) and str(home.root) in str(caught.value)
        assert caught.value.exit_code == EXIT_BUSY
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0

    with home.exclusive("convert"):  # released when the holder is done
        assert "convert" in (home.root / ".lock").read_text()
    assert (home.root / ".lock").read_text() == ""


def test_exclusive_is_released_on_error(tmp_path: Path) -> None:
    home = Home.open(tmp_path)
    with pytest.raises(RuntimeError):
        with home.exclusive("first"):
            raise RuntimeError("job failed")
    with home.exclusive("second"):
        pass


def test_atomic_path_replaces_the_file_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    atomic_write_text(target, "one")
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary != target
        temporary.write_text("two")
        assert target.read_text() == "one"  # not replaced until the block succeeds
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]


def test_atomic_path_leaves_no_temporary_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half written")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json"]


def test_atomic_path_of_a_new_file_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "new.bin"):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
