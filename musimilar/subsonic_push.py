"""Push a list of library files to a Subsonic API server as a named playlist.

Files are matched to the server's songs by path. The server reports paths relative to its music folder (Subsonic,
Supysonic, Gonic; Navidrome with "Report Real Path"), or absolute as it sees them. With no mapping, a local file
matches the server song whose path is a tail of the local path (whole folder names); with a mapping
(`library_root` here is `server_root` there) the path is translated and must match exactly.

The path -> song id map is cached in the library home and refreshed only when a file is missing from it: first from
the server's newest albums until an album already known, then, if files are still missing, by listing every song.
A playlist is replaced without ever being half-replaced: the new one is created and read back, then the old one of
the same name is deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from musimilar.errors import MusimilarError
from musimilar.home import Home, atomic_write_text
from musimilar.settings import SubsonicSettings
from musimilar.subsonic import NOT_FOUND, Song, SubsonicApiError, SubsonicClient


@dataclass(frozen=True)
class PathMapping:
    """Where the server sees the library: local `library_root` is `server_root` in the server's song paths."""

    library_root: Path | None = None
    server_root: str | None = None

    def server_path(self, local: Path) -> str | None:
        """The server's path for a local file; None when the file lies outside `library_root` (or no mapping)."""
        if self.library_root is None:
            return None
        try:
            relative = Path(local).relative_to(Path(self.library_root).expanduser().resolve())
        except ValueError:
            return None
        return _normal(str(PurePosixPath(self.server_root or "") / relative.as_posix()))


@dataclass
class SongMap:
    """The server's song path -> id map, kept in a JSON file between pushes."""

    file: Path
    songs: dict[str, str] = field(default_factory=dict)
    albums: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, file: Path) -> SongMap:
        try:
            data = json.loads(Path(file).read_text(encoding="utf-8"))
            return cls(Path(file), dict(data["songs"]), set(data["albums"]))
        except (OSError, ValueError, KeyError, TypeError):  # no cache yet, or an unreadable one: start afresh
            return cls(Path(file))

    def save(self) -> None:
        text = json.dumps({"songs": self.songs, "albums": sorted(self.albums)}, ensure_ascii=False)
        atomic_write_text(self.file, text)

    def add(self, songs: Sequence[Song]) -> None:
        self.songs.update((_normal(song.path), song.id) for song in songs)

    def refresh_incremental(self, client: SubsonicClient) -> None:
        """Read the newest albums until one already known; their songs join the map."""
        for album_id in client.newest_albums():
            if album_id in self.albums:
                break
            self.add(client.album_songs(album_id))
            self.albums.add(album_id)

    def refresh_full(self, client: SubsonicClient) -> None:
        self.songs = {}
        self.add(list(client.all_songs()))

    def lookup(self, paths: Sequence[Path], mapping: PathMapping) -> tuple[list[str], list[Path]]:
        """Song ids of the files in order, and the files the server does not know."""
        by_name: dict[str, list[str]] = {}
        if mapping.library_root is None:
            for server_path in self.songs:
                by_name.setdefault(PurePosixPath(server_path).name, []).append(server_path)
        ids: list[str] = []
        missing: list[Path] = []
        for path in paths:
            server_path = mapping.server_path(path) if mapping.library_root else _tail_match(path, by_name)
            song_id = self.songs.get(server_path) if server_path else None
            if song_id is None:
                missing.append(path)
            else:
                ids.append(song_id)
        return ids, missing


@dataclass
class PushReport:
    name: str
    playlist_id: str
    pushed: int
    unmapped: list[str]
    replaced: int  # old playlists of that name deleted
    refresh: str  # "none", "incremental" or "full"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "playlist_id": self.playlist_id,
            "pushed": self.pushed,
            "unmapped": self.unmapped,
            "replaced": self.replaced,
            "refresh": self.refresh,
        }


def push_playlist(
    client: SubsonicClient,
    name: str,
    paths: Sequence[Path],
    mapping: PathMapping,
    cache_file: Path,
    notify: Callable[[str], None] | None = None,
) -> PushReport:
    """Create (or replace) the playlist `name` with the songs of `paths` the server knows, in order."""
    notify = notify or (lambda text: None)
    paths = [Path(p).expanduser().resolve() for p in paths]
    client.ping()
    song_map = SongMap.load(cache_file)
    refresh, (ids, missing) = "none", song_map.lookup(paths, mapping)
    if missing:
        notify(f"{len(missing)} tracks not in the cached song map: reading the server's newest albums")
        song_map.refresh_incremental(client)
        refresh, (ids, missing) = "incremental", song_map.lookup(paths, mapping)
    if missing:
        notify(f"{len(missing)} tracks still unknown: listing every song of the server")
        song_map.refresh_full(client)
        refresh, (ids, missing) = "full", song_map.lookup(paths, mapping)
    song_map.save()
    if not ids:
        raise MusimilarError(
            f"{client.url}: none of the {len(paths)} tracks is known to the server "
            "(check --server-root/--library-root and that the server has scanned the library)"
        )
    old = [
        str(p["id"]) for p in client.playlists() if p.get("name") == name and p.get("owner", client.user) == client.user
    ]
    try:
        new_id = _create_checked(client, name, ids)
    except SubsonicApiError as error:
        if error.code != NOT_FOUND or refresh == "full":
            raise
        notify("the server no longer knows some cached song ids: listing every song of the server")
        song_map.refresh_full(client)
        song_map.save()
        refresh, (ids, missing) = "full", song_map.lookup(paths, mapping)
        new_id = _create_checked(client, name, ids)
    for playlist_id in old:
        client.delete_playlist(playlist_id)
    return PushReport(name, new_id, len(ids), [str(p) for p in missing], len(old), refresh)


def _create_checked(client: SubsonicClient, name: str, ids: list[str]) -> str:
    """Create the playlist and read it back; a playlist that is not exactly `ids` is deleted again."""
    new_id = client.create_playlist(name, ids)
    stored = client.playlist_song_ids(new_id)
    if stored != ids:
        client.delete_playlist(new_id)
        raise SubsonicApiError(client.url, NOT_FOUND, f"the new playlist holds {len(stored)} of {len(ids)} songs")
    return new_id


def _tail_match(path: Path, by_name: dict[str, list[str]]) -> str | None:
    """The server path that is the longest tail of `path` in whole components (None when none or a tie)."""
    parts = path.parts
    best, best_length, tie = None, 0, False
    for candidate in by_name.get(path.name, []):
        candidate_parts = PurePosixPath(candidate).parts
        length = len(candidate_parts)
        if tuple(parts[-length:]) != candidate_parts:
            continue
        if length > best_length:
            best, best_length, tie = candidate, length, False
        elif length == best_length:
            tie = True
    return None if tie else best


def _normal(server_path: str) -> str:
    return str(PurePosixPath(server_path.replace("\\", "/")))


def push_to_server(
    home: Home, server: SubsonicSettings, name: str, paths: Sequence[Path], password: str, notify: Callable[[str], None]
) -> PushReport:
    """`push_playlist` to the server `server` describes, with its song id map cached in the home."""
    client = SubsonicClient(server.url, server.user, password, server.timeout)
    mapping = PathMapping(Path(server.library_root) if server.library_root else None, server.server_root)
    return push_playlist(client, name, paths, mapping, _id_cache(home, server), notify)


def _id_cache(home: Home, server: SubsonicSettings) -> Path:
    """The song id map of this server and user, kept in the library home."""
    key = hashlib.sha1(f"{server.url}\n{server.user}".encode()).hexdigest()[:12]
    return home.root / "players" / f"subsonic-{key}.json"
