"""Run the server: decide who may use it, say where it is, and serve until Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from musimilar.errors import MusimilarError
from musimilar.serve.auth import LOGIN_PREFIX, TOKEN_ENV, Access, is_loopback, new_token
from musimilar.serve.state import ServeOptions
from musimilar.serve.worker import APP_FACTORY, WorkerPlan, exported, open_checked

Notify = Callable[[str], None]
# uvicorn's supervisor replaces a worker that does not answer its ping in time (5 s by default); a training or
# embedding job beside the server can starve a worker that long without anything being wrong with it.
WORKER_HEALTHCHECK_SECONDS = 60
BROWSER_WAIT_SECONDS = 30  # --open: then the browser is opened anyway, and says what it finds


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
    home: Path, config: Path | None, options: ServeOptions, startup: Startup, notify: Notify, open_browser: bool = False
) -> None:
    """Serve the library from `options.workers` processes until interrupted; says at once when it cannot recommend
    yet."""
    import uvicorn

    codes = startup.access.login_codes
    plan = WorkerPlan(home, config, options, startup.access.token is not None, codes.folder if codes else None)
    library, not_ready = open_checked(plan)  # each server process opens its own
    library.close()
    if not_ready is not None:
        notify(f"warning: {not_ready.message}; browsing and listening work, recommendations wait for it")
    _announce(startup, options, notify)
    if open_browser:
        threading.Thread(target=_open_when_listening, args=(startup.open_url, options), daemon=True).start()
    try:
        with exported(plan, startup.access.token), _stopped_by_sigterm():
            uvicorn.run(
                APP_FACTORY,
                factory=True,
                host=options.host,
                port=options.port,
                workers=options.workers,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
                log_level="warning",
                access_log=False,
            )
    except SystemExit:  # uvicorn exits when it cannot bind: say so in one line instead
        where = f"{options.host}:{options.port}"
        raise MusimilarError(f"{where}: cannot listen there (in use, or not an address of this machine)") from None
    finally:
        startup.access.close()


def _open_when_listening(url: str, options: ServeOptions) -> None:
    """Open `url` in a browser once the server takes connections (its processes need a moment to start)."""
    import webbrowser

    deadline = time.monotonic() + BROWSER_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection((options.host, options.port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    webbrowser.open(url)


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (kill, systemd, docker stop) stops the server as Ctrl-C does, so what it leaves behind is removed:
    uvicorn stops gracefully on either, then raises the signal again for the handler that was there before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _announce(startup: Startup, options: ServeOptions, notify: Notify) -> None:
    processes = f"{options.workers} processes; " if options.workers > 1 else ""
    notify(f"serve: {startup.base_url} ({processes}Ctrl-C stops; API docs at {startup.base_url}docs)")
    if startup.token_source is None:
        return
    notify(f"serve: open {startup.open_url} once in your browser to log it in (the link works once)")
    if startup.token_source == "generated":
        notify(f"serve: API clients send 'Authorization: Bearer {startup.access.token}'")
    else:
        notify(f"serve: API clients send 'Authorization: Bearer ${TOKEN_ENV}'")
