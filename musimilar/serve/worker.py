"""One server process: uvicorn's supervisor starts `--workers` of them, and each builds its app from a plan.

`musimilar serve` puts the plan in the environment its processes inherit ($MUSIMILAR_SERVE_PLAN: the home, the
options, where the login codes are; the token, when one is needed, in $MUSIMILAR_SERVE_TOKEN), so nothing secret
is on a command line or in a file. Each process opens the library itself: the embeddings, the index and the
neighbour lists are memory-mapped, so the processes share them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from musimilar.errors import NotReadyError
from musimilar.serve.auth import TOKEN_ENV, Access, LoginCodes
from musimilar.serve.state import ServeOptions

PLAN_ENV = "MUSIMILAR_SERVE_PLAN"  # set by `musimilar serve` for its own processes; not a setting
APP_FACTORY = "musimilar.serve.worker:create_worker_app"  # what uvicorn imports in each process


@dataclass(frozen=True)
class WorkerPlan:
    """What every server process needs to build the same app."""

    home: Path
    config: Path | None
    options: ServeOptions
    token_required: bool
    login_folder: Path | None

    def open_library(self) -> Any:
        from musimilar.library import Library

        return Library.open(self.home, create=False, config=self.config)

    def access(self, environ: Mapping[str, str]) -> Access:
        token = environ[TOKEN_ENV] if self.token_required else None
        codes = LoginCodes(self.login_folder) if self.login_folder is not None else None
        return Access(token, codes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)  # the paths as text

    @classmethod
    def from_json(cls, text: str) -> WorkerPlan:
        fields = json.loads(text)
        return cls(
            home=Path(fields["home"]),
            config=None if fields["config"] is None else Path(fields["config"]),
            options=ServeOptions(**fields["options"]),
            token_required=fields["token_required"],
            login_folder=None if fields["login_folder"] is None else Path(fields["login_folder"]),
        )


@contextmanager
def exported(plan: WorkerPlan, token: str | None) -> Iterator[None]:
    """The plan (and the token) in this process's environment, for the server processes it starts meanwhile."""
    values = {PLAN_ENV: plan.to_json(), **({TOKEN_ENV: token} if token is not None else {})}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def open_checked(plan: WorkerPlan) -> tuple[Any, NotReadyError | None]:
    """The opened library, and why it cannot recommend yet (no model, embeddings or index) or None."""
    library = plan.open_library()
    try:
        library.ready()
    except NotReadyError as error:
        return library, error
    return library, None


def create_worker_app() -> Any:
    """uvicorn's app factory, run once in each server process."""
    from musimilar.serve.app import create_app
    from musimilar.serve.mapping import warm_map

    plan = WorkerPlan.from_json(os.environ[PLAN_ENV])
    library, _ = open_checked(plan)  # not ready: `musimilar serve` said so once; recommendations wait for it
    app = create_app(plan.open_library, plan.options, plan.access(os.environ), library)
    warm_map(app.state.musimilar)
    return app
