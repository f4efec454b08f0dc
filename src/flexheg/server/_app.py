"""The FastAPI application: configuration, authentication, error handling and mounting.

Every request reads the clock once (``ServerConfig.clock``) and passes that time down. Every
write needs a role allowed to do it; an owner sees only the entities it owns.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from flexheg import __version__
from flexheg.errors import InputError, Rejected
from flexheg.registry import (
    AuthenticatedPrincipal,
    ConflictError,
    NotFoundError,
    Registry,
    RegistryConfig,
    Role,
)
from flexheg.server._schemas import ErrorBody
from flexheg.wire import SigningKey

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"


@dataclass(frozen=True)
class TranslogOptions:
    """Storage file, checkpoint signing key and name of the transparency log."""

    storage_path: Path
    key_path: Path
    name: str


@dataclass(frozen=True)
class ServerConfig:
    """Settings of ``flexheg serve``.

    Attributes:
        database_url: the registry database (``sqlite:///PATH`` or ``postgresql://...``).
        registry: thresholds of the registry's checks.
        license_keys: the key the server signs operating licenses with, per licensing state.
        agreement_digest: the agreement that issued licenses name; renewals fail without it.
        translog: serve the transparency log under ``/v1/log`` when set.
        thread_limit: threads that serve blocking requests (AnyIO's default when None).
        clock: returns the current tick; read once per request.
    """

    database_url: str
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    license_keys: Mapping[str, SigningKey] = field(default_factory=dict)
    agreement_digest: str | None = None
    translog: TranslogOptions | None = None
    thread_limit: int | None = None
    clock: Callable[[], int] = field(default=lambda: int(time.time()))


_bearer = HTTPBearer(auto_error=False, description="A token issued by 'flexheg registry token issue'.")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid input"},
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorBody, "description": "The principal's role may not do this"},
    404: {"model": ErrorBody, "description": "Not found, or not visible to this principal"},
    409: {"model": ErrorBody, "description": "Conflicts with what is registered"},
    422: {"model": ErrorBody, "description": "Invalid request body, or a security check rejected it"},
}


def registry_of(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def config_of(request: Request) -> ServerConfig:
    config: ServerConfig = request.app.state.config
    return config


def now_of(request: Request) -> int:
    """Return the request's time, read once from the configured clock."""
    if not hasattr(request.state, "now"):
        request.state.now = config_of(request).clock()
    now: int = request.state.now
    return now


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthenticatedPrincipal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    principal = registry_of(request).authenticate(credentials.credentials)
    if principal is None:
        logger.warning(
            "rejected an unknown or revoked token from %s",
            request.client.host if request.client else "unknown client",
        )
        raise HTTPException(401, "invalid or revoked bearer token", headers={"WWW-Authenticate": "Bearer"})
    return principal


Principal = Annotated[AuthenticatedPrincipal, Depends(current_principal)]


def require(*roles: Role) -> Callable[[AuthenticatedPrincipal], AuthenticatedPrincipal]:
    """Return a dependency that admits only principals with one of ``roles``."""
    allowed = frozenset(roles)

    def check(principal: Principal) -> AuthenticatedPrincipal:
        if principal.role not in allowed:
            raise HTTPException(
                403,
                f"role {principal.role.value} may not do this; allowed: "
                + ", ".join(sorted(role.value for role in allowed)),
            )
        return principal

    return check


def log_write_guard(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let anyone read the transparency log; only the international body may write to it."""
    if request.method in ("GET", "HEAD"):
        return
    principal = current_principal(request, credentials)
    if principal.role is not Role.INTERNATIONAL_BODY:
        raise HTTPException(403, f"role {principal.role.value} may not write to the log")


def owner_scope(principal: AuthenticatedPrincipal) -> str | None:
    """Return the owner name that limits what ``principal`` may read, or None for no limit."""
    return principal.name if principal.role is Role.OWNER else None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Rejected)
    async def _rejected(request: Request, exc: Rejected) -> JSONResponse:
        logger.warning("%s %s rejected: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=422, content={"detail": exc.to_dict()})

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        status = 400
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, ConflictError):
            status = 409
        logger.info("%s %s failed with %d: %s", request.method, request.url.path, status, exc)
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        logger.info("%s %s failed with %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        logger.info(
            "%s %s: invalid request: %d error(s)", request.method, request.url.path, len(exc.errors())
        )
        messages = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return JSONResponse(status_code=422, content={"detail": messages[:4000]})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed with an internal error", request.method, request.url.path, exc_info=exc)
        return JSONResponse(status_code=500, content={"detail": "internal server error"})


def _translog_router(options: TranslogOptions) -> APIRouter | None:
    try:
        # The log is an optional part of the server; import it only when it is configured.
        from flexheg.translog import SQLiteLogStorage, TransparencyLog  # noqa: PLC0415
        from flexheg.translog.http import create_router  # noqa: PLC0415
        from flexheg.wire.checkpoint import NoteSigner  # noqa: PLC0415
    except ImportError:
        logger.warning("transparency log requested but flexheg.translog is not available")
        return None
    try:
        pem = options.key_path.read_bytes()
    except OSError as exc:
        raise InputError(f"{options.key_path}: cannot read the log key: {exc.strerror}") from None
    signer = NoteSigner.from_pem(options.name, pem, what=str(options.key_path))
    log = TransparencyLog(SQLiteLogStorage(options.storage_path), signer)
    return create_router(log)


MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body the server reads; census files above this go through the CLI."""


class BodyLimit:
    """ASGI middleware that answers 413 before reading a body above ``limit`` bytes.

    It checks the declared Content-Length first, then counts the bytes of bodies sent without
    one, so an anonymous client cannot make the server buffer an arbitrarily large request.
    """

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send)
            return
        received = 0
        too_large = False

        async def counting_receive() -> Any:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # Tell the app the client went away, so that it stops reading the body.
                too_large = True
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            if not too_large:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        logger.warning("rejected a request body above %d bytes", self.limit)
        body = json.dumps({"detail": f"request body above {self.limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(
    config: ServerConfig,
    *,
    registry: Registry | None = None,
    routers: Sequence[tuple[str, APIRouter]] = (),
) -> FastAPI:
    """Build the HTTP server.

    Args:
        config: the server's settings.
        registry: an open registry to serve; by default one is opened from
            ``config.database_url`` when the app starts and closed when it stops.
        routers: further ``(prefix, router)`` pairs that other parts of flexheg mount into the
            same process; they share the app's error handling.
    """
    owns_registry = registry is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.thread_limit is not None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = config.thread_limit
        if app.state.registry is None:
            app.state.registry = Registry.open(config.database_url, config.registry)
        logger.info("flexheg server started (database %s)", app.state.registry.db.dialect)
        try:
            yield
        finally:
            if owns_registry:
                app.state.registry.close()
                app.state.registry = None
            logger.info("flexheg server stopped")

    # The routes import this module for its dependencies, so they are imported here.
    from flexheg.server._routes import build_router  # noqa: PLC0415

    app = FastAPI(
        title="flexheg registry",
        version=__version__,
        description=(
            "Registry of flexHEG devices, non-flexHEG chips, data centers, fabs and equipment: "
            "census, inspections, chain of custody, operating licenses and production oversight."
        ),
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.registry = registry
    app.add_middleware(BodyLimit)
    _install_error_handlers(app)
    app.include_router(build_router(), prefix=API_PREFIX, responses=ERROR_RESPONSES)
    if config.translog is not None:
        log_router = _translog_router(config.translog)
        if log_router is not None:
            app.include_router(
                log_router,
                prefix=f"{API_PREFIX}/log",
                tags=["transparency log"],
                dependencies=[Depends(log_write_guard)],
            )
    for prefix, router in routers:
        app.include_router(router, prefix=prefix)
    return app
