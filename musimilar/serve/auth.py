"""Who may use the server: anyone on the machine when it listens on loopback, else holders of a token.

A token is sent as `Authorization: Bearer TOKEN` or in a cookie. A browser gets the cookie from a one-time URL
printed at start (`/login/CODE`): the code works once, so the URL in a terminal's scrollback or a browser's
history is worthless after use, and the token itself never appears in a URL. The code works once across all the
server's processes (`--workers`): see `LoginCodes`.

Without a token, the server still checks the Host header (a web page on another site cannot reach it through a
DNS name that points at 127.0.0.1) and refuses cross-site writes (an Origin header naming another host).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_ENV = "MUSIMILAR_SERVE_TOKEN"
COOKIE_NAME = "musimilar_token"
LOGIN_PREFIX = "/login/"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
COOKIE_MAX_AGE_SECONDS = 30 * 24 * 3600
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


class LoginCodes:
    """One-time login codes that every server process can redeem, each exactly once.

    A code is an empty file, named by the code's SHA-256, in a private folder (mode 0700) the processes share;
    redeeming deletes the file, and of several processes deleting it at once only one succeeds. The name is a hash:
    nothing a request sends reaches the file system, and the folder's listing gives no code away.
    """

    def __init__(self, folder: Path | None = None) -> None:
        """The codes in `folder` (made by another process, which removes it), else in a new folder of their own."""
        self._owned: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._owned = tempfile.TemporaryDirectory(prefix="musimilar-login-")  # mode 0700; removed at exit too
            folder = Path(self._owned.name)
        self.folder = folder

    def new(self) -> str:
        code = secrets.token_urlsafe(16)
        os.close(os.open(self._file(code), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return code

    def redeem(self, code: str) -> bool:
        """True the first time `code` is offered, in whichever process; False after, or for a code never made."""
        try:
            os.unlink(self._file(code))
        except FileNotFoundError:
            return False
        return True

    def remove(self) -> None:
        """Remove the folder, when it is this object's own."""
        if self._owned is not None:
            self._owned.cleanup()

    def _file(self, code: str) -> Path:
        return self.folder / hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Access:
    """The server's access rule: `token` None means open to loopback clients only (and the host must be loopback)."""

    token: str | None
    login_codes: LoginCodes | None = None  # made with the first code

    def new_login_code(self) -> str:
        """A code for one browser to log in once (`/login/CODE` sets the token cookie)."""
        if self.login_codes is None:
            self.login_codes = LoginCodes()
        return self.login_codes.new()

    def redeem(self, code: str) -> bool:
        return self.login_codes is not None and self.login_codes.redeem(code)

    def close(self) -> None:
        if self.login_codes is not None:
            self.login_codes.remove()

    def allows(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        offered = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME, "")
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token.encode())


class AccessMiddleware:
    """Refuses requests the `Access` rule does not allow, with a one-line JSON error."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._check(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _check(self, request: Request) -> Response | None:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0] if request.headers.get("host") else ""
        if self.access.token is None and host.strip("[]") not in {n.strip("[]") for n in LOOPBACK_NAMES}:
            return _refuse(421, f"{host or 'no host'}: this server answers only to localhost")
        origin = request.headers.get("origin")
        if request.method not in SAFE_METHODS and origin and urlsplit(origin).netloc != request.headers.get("host"):
            return _refuse(403, f"{origin}: cross-site requests are refused")
        path = request.scope["path"]  # not request.url: building the whole URL costs more than the rest of the check
        if path.startswith(LOGIN_PREFIX):
            return self._login(path[len(LOGIN_PREFIX) :])
        if not self.access.allows(request):
            return _refuse(401, "a token is needed: send 'Authorization: Bearer TOKEN' or open the login URL")
        return None

    def _login(self, code: str) -> Response:
        if self.access.token is None:
            return RedirectResponse("/", status_code=303)
        if not self.access.redeem(code):
            return _refuse(401, "this login URL was already used or is unknown; restart the server for a new one")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE_NAME, self.access.token, max_age=COOKIE_MAX_AGE_SECONDS, httponly=True, samesite="strict"
        )
        return response


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)
