"""Endless radio for MPD: keep the queue topped up with the next similar tracks ("Don't Stop The Music").

The follower reads MPD's queue through python-mpd2; when fewer than `keep` tracks are left after the current one,
it asks `next_tracks` for more (given the last tracks of the queue as seeds and everything queued or added as
seen) and appends them by their URI relative to MPD's `music_directory`. It polls MPD's status, which makes
stopping and reconnecting simple: a dropped connection is retried with a growing pause until MPD is back.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from musimilar.errors import AuthenticationError, MusimilarError, UnreachableError

DEFAULT_PORT = 6600
SEED_TRACKS = 5  # the last tracks of the queue that stand for the listening history
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # pauses between reconnection attempts; the last one repeats

NextTracks = Callable[[list[Path], list[Path], int], list[Path]]  # (seeds, seen, count) -> files


@dataclass(frozen=True)
class MpdAddress:
    host: str
    port: int = DEFAULT_PORT

    @classmethod
    def parse(cls, text: str) -> MpdAddress:
        """HOST, HOST:PORT, or the path of MPD's Unix socket."""
        if text.startswith("/"):
            return cls(text, 0)
        host, _, port = text.rpartition(":") if ":" in text else (text, "", str(DEFAULT_PORT))
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise MusimilarError(f"{text}: not an MPD address (HOST:PORT, or the path of its socket)")
        return cls(host, int(port))

    def __str__(self) -> str:
        return self.host if self.port == 0 else f"{self.host}:{self.port}"


@dataclass
class RadioReport:
    added: list[str] = field(default_factory=list)  # MPD URIs, in the order they were queued
    refused: list[str] = field(default_factory=list)  # files outside music_directory, or unknown to MPD's database
    reconnects: int = 0


class MpdRadio:
    def __init__(
        self,
        address: MpdAddress,
        music_directory: Path,
        next_tracks: NextTracks,
        keep: int = 5,
        seeds: Sequence[Path] = (),
        seen: Sequence[Path] = (),
        password: str | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.address = address
        self.music_directory = Path(music_directory).expanduser().resolve()
        self.next_tracks = next_tracks
        self.keep = keep
        self.history = [Path(p).expanduser().resolve() for p in seeds]  # seeds, then what MPD played, in order
        self.seen = {Path(p).expanduser().resolve() for p in seen}
        self.password = password
        self.notify = notify or (lambda text: None)
        self.report = RadioReport()
        self._client = None

    def once(self) -> RadioReport:
        """Top the queue up once and disconnect (for cron or a client's hook); unreachable MPD is an error."""
        try:
            self._connect()
            self.top_up()
        finally:
            self._disconnect()
        return self.report

    def follow(self, stop: threading.Event | None = None, poll_seconds: float = 1.0) -> RadioReport:
        """Top the queue up whenever it runs low, until `stop` is set (or Ctrl-C); reconnects when MPD drops."""
        stop = stop or threading.Event()
        failures = 0
        try:
            while not stop.is_set():
                try:
                    if self._client is None:
                        self._connect()
                        if failures:
                            self.report.reconnects += 1
                            self.notify(f"{self.address}: connected again")
                        failures = 0
                    self.top_up()
                except UnreachableError as error:
                    self._disconnect()
                    pause = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                    if failures == 0:
                        self.notify(f"{error.message}; retrying every {pause:.0f}-{RETRY_SECONDS[-1]:.0f} s")
                    failures += 1
                    stop.wait(pause)
                    continue
                stop.wait(poll_seconds)
        finally:
            self._disconnect()
        return self.report

    def top_up(self) -> list[str]:
        """Append tracks until `keep` follow the current one; the URIs added."""
        status = self._mpd("status")
        current = int(status["song"]) if "song" in status else -1
        missing = self.keep - (int(status.get("playlistlength", 0)) - current - 1)
        if missing <= 0:  # the usual case of a poll: the queue itself is not read
            return []
        queue = [entry["file"] for entry in self._mpd("playlistinfo")]
        self._remember_played([self.music_directory / uri for uri in queue[: max(current, 0) + 1]])
        seen = sorted(self.seen | set(self.history) | {self.music_directory / uri for uri in queue})
        added = []
        for path in self.next_tracks(self.history[-SEED_TRACKS:], seen, missing):
            self.seen.add(Path(path).resolve())
            uri = self.uri_of(Path(path))
            if uri is None or not self._add(uri):
                self.report.refused.append(str(path))
                continue
            added.append(uri)
        self.report.added += added
        if added:
            self.notify(f"{self.address}: queued {len(added)}: " + ", ".join(added))
        return added

    def _remember_played(self, played: list[Path]) -> None:
        """The history survives MPD clearing its queue (a restart, `clear`, consume mode)."""
        known = set(self.history)
        self.history += [path for path in played if path not in known]

    def uri_of(self, path: Path) -> str | None:
        """MPD's URI of a file: its path relative to music_directory, with forward slashes."""
        try:
            return PurePosixPath(Path(path).resolve().relative_to(self.music_directory).as_posix()).as_posix()
        except ValueError:
            return None

    def _add(self, uri: str) -> bool:
        import mpd

        try:
            self._mpd("add", uri)
            return True
        except mpd.CommandError as error:  # not in MPD's database (not scanned yet, or filtered out)
            self.notify(f"{self.address}: MPD refused {uri}: {error}")
            return False

    def _mpd(self, command: str, *arguments: str):  # noqa: ANN202 - python-mpd2's answers are loosely typed
        import mpd

        try:
            return getattr(self._client, command)(*arguments)
        except (mpd.ConnectionError, OSError) as error:
            self._disconnect()
            raise UnreachableError(f"{self.address}: MPD dropped the connection ({error or 'closed'})") from None

    def _connect(self) -> None:
        import mpd

        client = mpd.MPDClient()
        client.timeout = 10
        try:
            client.connect(self.address.host, self.address.port or None)
            if self.password:
                client.password(self.password)
        except mpd.CommandError as error:
            raise AuthenticationError(f"{self.address}: MPD refused the password: {error}") from None
        except (mpd.ConnectionError, OSError, socket.timeout) as error:
            raise UnreachableError(f"{self.address}: cannot reach MPD: {error}") from None
        self._client = client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.close()
            client.disconnect()
        except Exception:  # the connection is already gone; there is nothing left to close
            pass
