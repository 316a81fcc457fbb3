"""The ASGI app: the JSON API, the page and its static files, access control, and one-line JSON errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware

from musimilar import __version__
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.serve.api import router
from musimilar.serve.auth import Access, AccessMiddleware
from musimilar.serve.quick import PATH, quick_similar_route
from musimilar.serve.state import ServeOptions, ServerState

GZIP_MINIMUM_BYTES = 2048
log = logging.getLogger("musimilar.serve")


def create_app(
    open_library: Callable[[], Any],
    options: ServeOptions = ServeOptions(),
    access: Access | None = None,
    library: Any | None = None,
) -> FastAPI:
    """The server's app; `open_library()` opens the library (a `musimilar.library.Library`), once per worker;
    `library`, when given, is one opened already, which answers the quick requests from the first one on."""
    app = FastAPI(title="musimilar", version=__version__, docs_url="/docs", redoc_url=None)
    app.state.musimilar = ServerState(open_library, options, library)
    app.router.routes.append(quick_similar_route(_route(router, PATH)))  # before the API's router: it comes first
    app.include_router(router)
    static = resources.files("musimilar.serve").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(static.joinpath("index.html")), media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def no_icon() -> Response:
        return Response(status_code=204)

    _add_error_handlers(app)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES)
    app.add_middleware(AccessMiddleware, access=access or Access(token=None))
    app.router.add_event_handler("shutdown", app.state.musimilar.close)
    return app


def _route(router: APIRouter, path: str) -> APIRoute:
    return next(route for route in router.routes if isinstance(route, APIRoute) and route.path == path)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is one line of JSON, `{"error": "..."}`, with a 4xx status (5xx only for our own faults)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body", "path"))
        return JSONResponse({"error": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(NotReadyError)
    async def not_ready(request: Request, error: NotReadyError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=503)

    @app.exception_handler(MusimilarError)
    async def refused(request: Request, error: MusimilarError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=422)

    @app.exception_handler(Exception)
    async def fault(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(error).__name__}"}, status_code=500)
