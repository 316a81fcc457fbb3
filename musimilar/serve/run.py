"""Run the server: decide who may use it, say where it is, and serve until Ctrl-C."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from musimilar.errors import MusimilarError, NotReadyError
from musimilar.serve.auth import LOGIN_PREFIX, TOKEN_ENV, Access, is_loopback, new_token
from musimilar.serve.state import ServeOptions

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Startup:
    """How to reach a server about to start: `open_url` logs a browser in (once) when a token is needed."""

    base_url: str
    open_url: str
    access: Access
    token_source: str | None  # "environment" or "generated"; None when no token is needed


def plan_access(options: ServeOptions, require_token: bool, environ: dict[str, str] | None = None) -> Startup:
    """A token is needed when asked for or when the server listens beyond this machine; it comes from
    $MUSIMILAR_SERVE_TOKEN, else it is made up (a token given as a flag would stay in the shell's history)."""
    environ = dict(os.environ) if environ is None else environ
    shown_host = f"[{options.host}]" if ":" in options.host else options.host
    base_url = f"http://{shown_host}:{options.port}/"
    if not require_token and is_loopback(options.host):
        return Startup(base_url, base_url, Access(token=None), None)
    token, source = (environ[TOKEN_ENV], "environment") if environ.get(TOKEN_ENV) else (new_token(), "generated")
    access = Access(token=token)
    return Startup(base_url, f"{base_url.rstrip('/')}{LOGIN_PREFIX}{access.new_login_code()}", access, source)


def serve(
    open_library: Callable[[], Any], options: ServeOptions, startup: Startup, notify: Notify, open_browser: bool = False
) -> None:
    """Serve the library until interrupted; says at once when it cannot recommend yet."""
    import uvicorn

    from musimilar.serve.app import create_app

    library = open_library()
    try:
        library.ready()
    except NotReadyError as error:
        notify(f"warning: {error.message}; browsing and listening work, recommendations wait for it")
    app = create_app(open_library, options, startup.access, library)
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    _announce(startup, notify)
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(startup.open_url,)).start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind: say so in one line instead
        where = f"{options.host}:{options.port}"
        raise MusimilarError(f"{where}: cannot listen there (in use, or not an address of this machine)") from None
    finally:
        startup.access.close()


def _announce(startup: Startup, notify: Notify) -> None:
    notify(f"serve: {startup.base_url} (Ctrl-C stops; API docs at {startup.base_url}docs)")
    if startup.token_source is None:
        return
    notify(f"serve: open {startup.open_url} once in your browser to log it in (the link works once)")
    if startup.token_source == "generated":
        notify(f"serve: API clients send 'Authorization: Bearer {startup.access.token}'")
    else:
        notify(f"serve: API clients send 'Authorization: Bearer ${TOKEN_ENV}'")
