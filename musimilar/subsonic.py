"""A small client of the Subsonic REST API (Navidrome, Gonic, Airsonic-Advanced, Supysonic...).

Plain urllib over JSON: the handful of calls a playlist push needs does not justify a dependency, and every
server failure becomes one typed error (unreachable, refused credentials, an API error) with the server's words.
Authentication is the API's token + salt (md5(password + salt), API 1.13+); a server older than 1.13, or one that
cannot check tokens (Supysonic stores only salted hashes; LDAP users), is answered with the hex-encoded password.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from musimilar.errors import AuthenticationError, MusimilarError, UnreachableError

API_VERSION = "1.13.0"  # the first version with token authentication
CLIENT_NAME = "musimilar"
PAGE = 500  # songs or albums per listing request
# Subsonic error codes (http://www.subsonic.org/pages/api.jsp#errors)
MISSING_PARAMETER = 10
CLIENT_TOO_NEW = 20
WRONG_CREDENTIALS = 40
TOKEN_UNSUPPORTED = 41
NOT_FOUND = 70
# How a server that cannot check tokens answers one: "p" is missing (Supysonic), the API is older than 1.13, or
# token authentication is not supported for this user (LDAP).
TOKEN_REFUSALS = (MISSING_PARAMETER, CLIENT_TOO_NEW, TOKEN_UNSUPPORTED)


class SubsonicApiError(MusimilarError):
    """The server answered, with an API error."""

    def __init__(self, url: str, code: int, text: str) -> None:
        self.code = code
        super().__init__(f"{url}: the server answered error {code}: {text}")


@dataclass(frozen=True)
class Song:
    id: str
    path: str  # as the server reports it (relative to its music folder, or absolute on some servers)


class SubsonicClient:
    def __init__(self, url: str, user: str, password: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self._password = password
        self.timeout = timeout
        self._use_token = True
        self._token_accepted = False  # once a call succeeds with a token, errors are never taken for auth trouble

    def ping(self) -> None:
        """Check the server and the credentials (and settle the authentication method)."""
        self.call("ping")

    def call(self, endpoint: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one API call (form-encoded, so long song lists fit); the `subsonic-response` body on success."""
        fields = [*self._auth(), ("f", "json"), ("c", CLIENT_NAME), ("v", API_VERSION)]
        for key, value in (params or {}).items():
            values = value if isinstance(value, (list, tuple)) else [value]
            fields += [(key, str(item)) for item in values]
        request = urllib.request.Request(
            f"{self.url}/rest/{endpoint}.view", data=urllib.parse.urlencode(fields).encode("ascii"), method="POST"
        )
        body = self._send(request)
        answer = body.get("subsonic-response") if isinstance(body, dict) else None
        if not isinstance(answer, dict):
            raise MusimilarError(f"{self.url}: not a Subsonic API server (unexpected answer to {endpoint})")
        if answer.get("status") != "ok":
            error = answer.get("error") or {}
            code, text = int(error.get("code", 0)), str(error.get("message", "unknown error"))
            if self._use_token and not self._token_accepted and code in TOKEN_REFUSALS:
                self._use_token = False  # a server that cannot check tokens: send the password instead
                return self.call(endpoint, params)
            if code == WRONG_CREDENTIALS:
                raise AuthenticationError(f"{self.url}: the server refused user {self.user!r}: {text}")
            raise SubsonicApiError(self.url, code, text)
        self._token_accepted = self._use_token
        return answer

    def _auth(self) -> list[tuple[str, str]]:
        if self._use_token:
            salt = secrets.token_hex(8)
            token = hashlib.md5((self._password + salt).encode("utf-8")).hexdigest()
            return [("u", self.user), ("t", token), ("s", salt)]
        return [("u", self.user), ("p", "enc:" + self._password.encode("utf-8").hex())]

    def _send(self, request: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            if error.code == 401:
                raise AuthenticationError(f"{self.url}: the server refused user {self.user!r} (HTTP 401)") from None
            raise MusimilarError(f"{self.url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise UnreachableError(f"{self.url}: cannot reach the server: {reason}") from None
        except (ValueError, UnicodeDecodeError):
            raise MusimilarError(f"{self.url}: not a Subsonic API server (the answer is not JSON)") from None

    def all_songs(self) -> Iterator[Song]:
        """Every song of the server, by pages of an empty search (the OpenSubsonic way to list a library)."""
        offset = 0
        while True:
            found = self.call(
                "search3", {"query": "", "songCount": PAGE, "songOffset": offset, "artistCount": 0, "albumCount": 0}
            )
            songs = (found.get("searchResult3") or {}).get("song") or []
            yield from (Song(str(s["id"]), str(s["path"])) for s in songs if "path" in s)
            if len(songs) < PAGE:
                return
            offset += PAGE

    def newest_albums(self) -> Iterator[str]:
        """Album ids, newest first (what an incremental refresh reads until it meets albums it knows)."""
        offset = 0
        while True:
            found = self.call("getAlbumList2", {"type": "newest", "size": PAGE, "offset": offset})
            albums = (found.get("albumList2") or {}).get("album") or []
            yield from (str(album["id"]) for album in albums)
            if len(albums) < PAGE:
                return
            offset += PAGE

    def album_songs(self, album_id: str) -> list[Song]:
        album = self.call("getAlbum", {"id": album_id}).get("album") or {}
        return [Song(str(s["id"]), str(s["path"])) for s in album.get("song") or [] if "path" in s]

    def playlists(self) -> list[dict[str, Any]]:
        return list((self.call("getPlaylists").get("playlists") or {}).get("playlist") or [])

    def playlist_song_ids(self, playlist_id: str) -> list[str]:
        playlist = self.call("getPlaylist", {"id": playlist_id}).get("playlist") or {}
        return [str(entry["id"]) for entry in playlist.get("entry") or []]

    def create_playlist(self, name: str, song_ids: list[str]) -> str:
        """A new playlist (even when one of that name exists); its id."""
        before = {str(p["id"]) for p in self.playlists()}
        answer = self.call("createPlaylist", {"name": name, "songId": song_ids})
        if isinstance(answer.get("playlist"), dict):  # API 1.14+ answers with the playlist
            return str(answer["playlist"]["id"])
        created = [str(p["id"]) for p in self.playlists() if p.get("name") == name and str(p["id"]) not in before]
        if len(created) != 1:
            raise MusimilarError(f"{self.url}: created playlist {name!r} but cannot find it again")
        return created[0]

    def delete_playlist(self, playlist_id: str) -> None:
        self.call("deletePlaylist", {"id": playlist_id})
