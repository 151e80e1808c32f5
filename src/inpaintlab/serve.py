"""Web server: one static page to paint a hole and inpaint it, plus a small JSON API (FastAPI).

``GET /`` the page (``web/``), ``GET /api/models`` the models, strategies and limits on offer, ``GET
/api/status`` the job queue (running, waiting), ``POST /api/inpaint`` multipart ``image`` + ``mask`` files
(+ ``model``, ``strategy`` fields) -> ``image/png``, ``POST /api/select`` an ``image`` and a box -> the
object's mask (GrabCut), ``POST /api/grow`` a ``mask`` and ``by`` pixels -> the mask grown or shrunk. The
OpenAPI schema is at ``/openapi.json``. Only loopback host names (or ``--host``) and same-origin POSTs are
served.

Untrusted input is checked before any work: the request body size (413), the image type by content (415),
the pixel count from the header before decoding (413), corrupt data, mask/image size mismatch and an
all-hole mask (400), wrong field types (422). An empty mask returns the image unchanged. Models are built
once, on first use, and cached. Jobs (decoding included) run one at a time in a worker thread behind a
bounded queue (``JobQueue``: 503 + Retry-After when full), each within a time limit (503 past it) and
cancelled when its client goes away, so the event loop keeps answering while a request computes and no
client controls the server's memory or time.
"""

import functools
import io
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import numpy as np
from PIL import Image

from .budget import Budget, JobCancelled, JobTimedOut, run_within
from .errors import InpaintlabError
from .pipeline import (
    STRATEGIES,
    ImageTooLargeError,
    InpaintPipeline,
    UnsupportedImageError,
    decode_image,
    to_hole_array,
    to_rgb_array,
)
from .types import contract_of

WEB_DIR = Path(__file__).parent / "web"


def default_models() -> tuple[str, ...]:
    """What a server offers when given nothing: the shipped default model (when its weights are present)
    first, then the classical baselines."""
    from .models.classical import CLASSICAL_MODELS
    from .pretrained import DEFAULT_MODEL, has_weights

    return ((DEFAULT_MODEL,) if has_weights(DEFAULT_MODEL) else ()) + CLASSICAL_MODELS


SERVER_MAX_PIXELS = 4096 * 4096  # the server faces the network: its own bound (the CLI and pipeline take 100 MP)


@dataclass(frozen=True)
class ServerLimits:
    """Limits of a shared server. ``max_upload_bytes``: the whole request body; ``max_pixels``: per image;
    ``max_waiting``: jobs waiting behind the one running (decoding included) before 503 + Retry-After;
    ``max_pad_pixels``: the largest picture a network runs at full size (``pad``: its cost grows ~10x per
    doubling of the side; 2048x2048 took minutes); ``detail``/``resize`` work on any allowed size;
    ``job_seconds``: a job still running after this is stopped (503) at its next check (``budget``)."""

    max_upload_bytes: int = 32 << 20
    max_pixels: int = SERVER_MAX_PIXELS
    max_waiting: int = 8
    max_pad_pixels: int = 1024 * 1024
    job_seconds: float = 120.0


class JobQueue:
    """One job at a time, at most ``max_waiting`` behind it, each within ``job_seconds`` (``budget``). A
    waiting job whose client went away is dropped before it runs; a running one is cancelled at its next
    check. ``run`` returns (result, seconds waited)."""

    def __init__(self, max_waiting: int, job_seconds: float):
        import asyncio

        self.max_waiting, self.waiting, self.job_seconds = max_waiting, 0, job_seconds
        self._turn = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._turn.locked()

    async def run(self, job, disconnected):
        import asyncio

        from fastapi import HTTPException
        from starlette.concurrency import run_in_threadpool

        began = time.perf_counter()
        if not self._turn.locked():  # free: take it now (no await in between, so no other job can slip in)
            await self._turn.acquire()
        elif self.waiting >= self.max_waiting:
            raise HTTPException(503, f"busy: {self.waiting} jobs are waiting; try again", headers={"Retry-After": "5"})
        else:
            self.waiting += 1
            try:
                while True:
                    try:
                        await asyncio.wait_for(self._turn.acquire(), timeout=0.25)
                        break
                    except asyncio.TimeoutError:
                        if await disconnected():
                            raise HTTPException(499, "client went away while waiting") from None
            finally:
                self.waiting -= 1
        try:
            waited = time.perf_counter() - began
            budget = Budget(self.job_seconds)
            running = asyncio.ensure_future(run_in_threadpool(run_within, budget, job))
            try:
                while not running.done():
                    await asyncio.wait({running}, timeout=0.25)
                    if not running.done() and await disconnected():
                        budget.cancel()  # the worker stops at its next check_budget()
            except asyncio.CancelledError:  # the server is shutting down (SIGTERM): stop the worker too
                budget.cancel()
                raise
            try:
                return running.result(), waited
            except JobCancelled:
                raise HTTPException(499, "client went away; the job was cancelled") from None
            except JobTimedOut as err:
                raise HTTPException(503, str(err)) from None
        finally:
            self._turn.release()


class ModelUnavailableError(InpaintlabError):
    """A served model's weights cannot be loaded (a checkpoint file that vanished or broke after start-up)."""


class ModelCatalog:
    """The models a server offers, by name: registered names and checkpoint files (named by stem).

    Pipelines are built on first use and cached; ``lock`` serialises inference across requests.
    """

    def __init__(self, models: Sequence[str] = (), checkpoints: Sequence[str | Path] = (), device: str = "cpu"):
        from .checkpoint import read_header
        from .resolve import answerable_kind

        self.device = device
        self.sources: dict[str, str | Path] = {}
        self.kinds: dict[str, str] = {}
        for name in models:
            self.kinds[name] = answerable_kind(name)  # refuses unknown names and untrained networks at start-up
            self._add(name, name)
        for path in checkpoints:
            read_header(path)  # fail at start-up, not on the first request
            self._add(Path(path).stem, Path(path))
            self.kinds[Path(path).stem] = "checkpoint"
        if not self.sources:
            for name in default_models():
                self.kinds[name] = answerable_kind(name)
                self._add(name, name)
        self._pipelines: dict[str, InpaintPipeline] = {}
        self._build_lock = threading.Lock()
        self.lock = threading.Lock()

    def _add(self, name: str, source: str | Path) -> None:
        if name in self.sources:
            raise InpaintlabError(f"two models would be served as {name!r}; rename one checkpoint file")
        self.sources[name] = source

    def get(self, name: str) -> InpaintPipeline:
        if name not in self.sources:
            raise InpaintlabError(f"model {name!r} is not served here; choose one of {', '.join(self.sources)}")
        with self._build_lock:
            if name not in self._pipelines:
                try:
                    self._pipelines[name] = InpaintPipeline.from_checkpoint(self.sources[name], device=self.device)
                except InpaintlabError as err:  # the full reason (with the server's paths) goes to its log only
                    print(f"inpaintlab: cannot load model {name!r}: {err}", file=sys.stderr, flush=True)
                    raise ModelUnavailableError(
                        f"model {name!r} cannot be loaded on this server (its log says why); choose another"
                    ) from None
            return self._pipelines[name]

    def describe(self) -> list[dict]:
        """One entry per model: name and kind ("pretrained" = shipped trained weights, "classical", "checkpoint")."""
        return [{"name": name, "source": self.kinds[name]} for name in self.sources]


class _BodyTooLarge(Exception):
    pass


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class SameOriginMiddleware:
    """ASGI middleware against DNS rebinding and cross-site requests: a ``Host`` header that names none of
    ``hosts`` gets 400, and a POST whose ``Origin`` (or ``Sec-Fetch-Site: cross-site``) says it comes from
    another site gets 403, so a web page the user visits cannot drive this server."""

    def __init__(self, app, hosts: Sequence[str] | None):
        self.app, self.hosts = app, None if hosts is None else {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from urllib.parse import urlsplit

        from starlette.responses import JSONResponse

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        name = (urlsplit(f"//{host}").hostname or "").lower()
        if self.hosts is not None and name not in self.hosts:
            detail = f"Host {host!r} is not served here (accepted: {', '.join(sorted(self.hosts))})"
            return await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
        origin = headers.get("origin")
        cross = headers.get("sec-fetch-site") == "cross-site" or (
            origin not in (None, "null") and urlsplit(origin).netloc != host
        )
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and cross:
            detail = f"cross-origin request from {origin or 'another site'} refused; use the page this server serves"
            return await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
        return await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """ASGI middleware answering 413 when a request body exceeds ``max_bytes`` (declared or streamed)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send):
        from starlette.responses import JSONResponse

        body = JSONResponse({"detail": f"request body exceeds {self.max_bytes:,} bytes"}, status_code=413)
        await body({"type": "http"}, None, send)


def create_app(
    models: Sequence[str] = (),
    checkpoints: Sequence[str | Path] = (),
    device: str = "cpu",
    limits: ServerLimits = ServerLimits(),
    hosts: Sequence[str] | None = LOOPBACK_NAMES,
):
    """The FastAPI application. ``models``/``checkpoints`` default to the classical baselines; ``hosts``: the
    host names a request's ``Host`` header may carry (``SameOriginMiddleware``; None = any, for a server
    deliberately bound to every interface)."""
    from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
    from fastapi.responses import FileResponse, Response
    from fastapi.staticfiles import StaticFiles

    from .version import __version__

    catalog = ModelCatalog(models, checkpoints, device)
    app = FastAPI(
        title="inpaintlab",
        version=__version__,
        description="Paint a hole on an image and fill it with an inpainting model.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: blank offline; the schema is at /openapi.json
        redoc_url=None,
    )
    app.state.catalog = catalog
    app.state.limits = limits
    jobs = app.state.jobs = JobQueue(limits.max_waiting, limits.job_seconds)
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_upload_bytes)
    app.add_middleware(SameOriginMiddleware, hosts=hosts)  # outermost: checked before anything is read
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    async def queued(job, request: Request):
        """``jobs.run`` with the input errors as HTTP statuses: too large 413, not an image 415, else 400."""
        try:
            return await jobs.run(job, request.is_disconnected)
        except ImageTooLargeError as err:
            raise HTTPException(413, str(err)) from None
        except UnsupportedImageError as err:
            raise HTTPException(415, str(err)) from None
        except ModelUnavailableError as err:
            raise HTTPException(503, str(err)) from None
        except InpaintlabError as err:
            raise HTTPException(400, str(err)) from None

    async def png_answer(job, request: Request) -> Response:
        """A queued job returning (PNG, seconds) as an ``image/png`` response with its compute and queue times."""
        (png, seconds), waited = await queued(job, request)
        headers = {"X-Inpaint-Seconds": f"{seconds:.4f}", "X-Inpaint-Queue-Seconds": f"{waited:.4f}"}
        return Response(png, media_type="image/png", headers=headers)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/api/models", summary="Models and strategies this server offers")
    def list_served_models() -> dict:
        return {
            "models": catalog.describe(),
            "default_model": next(iter(catalog.sources)),
            "strategies": list(STRATEGIES),
            "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels},
        }

    @app.get("/api/status", summary="The job queue now: whether a job is running and how many wait")
    def queue_status() -> dict:
        return {"running": jobs.running, "waiting": jobs.waiting, "max_waiting": jobs.max_waiting}

    @app.post(
        "/api/inpaint",
        summary="Inpaint an image: returns the result as PNG, same size, unchanged outside the hole",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 400: {}, 413: {}, 415: {}, 422: {}},
    )
    async def inpaint(
        request: Request,
        image: UploadFile = File(..., description="PNG/JPEG/WebP/BMP image"),
        mask: UploadFile = File(..., description="same size as the image; white (>127) = hole"),
        model: str | None = Form(None, description="a name from /api/models (default: the first)"),
        strategy: str | None = Form(None, description="pad | resize | crop | detail (default: the pipeline's)"),
    ) -> Response:
        image_bytes, mask_bytes = await image.read(), await mask.read()
        name = model or next(iter(catalog.sources))
        job = functools.partial(_inpaint_png, catalog, limits, name, strategy, image_bytes, mask_bytes)
        (png, seconds, strategy), waited = await queued(job, request)
        headers = {
            "X-Inpaint-Model": quote(name),  # percent-encoded: a header carries Latin-1 only (模型.safetensors)
            "X-Inpaint-Strategy": strategy,
            "X-Inpaint-Seconds": f"{seconds:.4f}",  # decode, fill and encode: the job's own compute
            "X-Inpaint-Queue-Seconds": f"{waited:.4f}",  # waiting behind other jobs
        }
        return Response(png, media_type="image/png", headers=headers)

    @app.post(
        "/api/select",
        summary="Select the object inside a box (GrabCut): returns its mask as PNG, white = hole",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 400: {}, 413: {}, 415: {}},
    )
    async def select(
        request: Request,
        image: UploadFile = File(..., description="PNG/JPEG/WebP/BMP image"),
        x0: int = Form(...),
        y0: int = Form(...),
        x1: int = Form(...),
        y1: int = Form(...),
        grow: int = Form(8, description="grow (> 0) or shrink (< 0) the selection by this many pixels"),
    ) -> Response:
        image_bytes = await image.read()
        return await png_answer(functools.partial(_select_png, limits, image_bytes, (x0, y0, x1, y1), grow), request)

    @app.post(
        "/api/grow",
        summary="Grow (by > 0) or shrink (by < 0) a mask by that many pixels: returns the mask as PNG",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 400: {}, 413: {}, 415: {}},
    )
    async def grow(
        request: Request,
        mask: UploadFile = File(..., description="white (>127) = hole"),
        by: int = Form(..., description="pixels, -64..64: > 0 grows, < 0 shrinks"),
    ) -> Response:
        mask_bytes = await mask.read()
        return await png_answer(functools.partial(_grow_png, limits, mask_bytes, by), request)

    return app


def _mask_png(hole: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(hole.astype(np.uint8) * 255).save(buffer, format="PNG")
    return buffer.getvalue()


def _grow_png(limits, mask_bytes, by) -> tuple[bytes, float]:
    """Decode a mask, grow or shrink it (``select.grow_mask``), encode it -> (PNG, seconds)."""
    from .select import grow_mask

    start = time.perf_counter()
    if not -64 <= by <= 64:
        raise InpaintlabError(f"by={by}: grow or shrink a mask by -64..64 pixels")
    hole = to_hole_array(decode_image(mask_bytes, "mask", limits.max_pixels))
    return _mask_png(grow_mask(hole, by)), time.perf_counter() - start


def _select_png(limits, image_bytes, box, grow) -> tuple[bytes, float]:
    """Decode, select the object in ``box`` (``select.select_object``), encode the mask -> (PNG, seconds)."""
    from .select import select_object

    start = time.perf_counter()
    picture = to_rgb_array(decode_image(image_bytes, "image", limits.max_pixels))
    hole = select_object(picture, box, grow=max(-64, min(64, grow)))
    return _mask_png(hole), time.perf_counter() - start


def _inpaint_png(catalog, limits, name, strategy, image_bytes, mask_bytes) -> tuple[bytes, float, str]:
    """Decode, check, inpaint (under the catalog lock) and encode -> (PNG, seconds, strategy used). Runs in a
    worker thread, one job at a time (``JobQueue``)."""
    start = time.perf_counter()
    if strategy is not None and strategy not in STRATEGIES:
        raise InpaintlabError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    try:
        picture = decode_image(image_bytes, "image", limits.max_pixels)  # alpha, if any, comes back unchanged
        hole = decode_image(mask_bytes, "mask", limits.max_pixels)
    except ImageTooLargeError as err:
        raise ImageTooLargeError(f"{err} on this server (inpaintlab fill takes up to 100 MP)") from None
    pipe = catalog.get(name)
    strategy = strategy or pipe.strategy
    pixels = picture.size[0] * picture.size[1]
    if strategy == "pad" and contract_of(pipe.model).trainable and pixels > limits.max_pad_pixels:
        raise InpaintlabError(
            f"strategy pad runs the network on all {pixels:,} pixels; this server allows it up to "
            f"{limits.max_pad_pixels:,} (its cost explodes with size): use detail or resize"
        )
    with catalog.lock:
        result = pipe(picture, hole, strategy=strategy)
    buffer = io.BytesIO()
    result.save(buffer, format="PNG")
    return buffer.getvalue(), time.perf_counter() - start, strategy


def _check_free(host: str, port: int) -> None:
    """Fail with one line before saying "serving on" when ``port`` cannot be bound on ``host``."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise InpaintlabError(f"cannot serve on {host}:{port}: {err.strerror or err}; choose another --port") from None


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    models: Sequence[str] = (),
    checkpoints: Sequence[str | Path] = (),
    device: str = "cpu",
    limits: ServerLimits = ServerLimits(),
) -> None:
    """Run the server with uvicorn until interrupted."""
    import uvicorn

    everywhere = host in ("0.0.0.0", "::", "")  # bound to every interface on purpose: any Host, same-origin POSTs
    hosts = None if everywhere else LOOPBACK_NAMES if host in LOOPBACK_NAMES else (*LOOPBACK_NAMES, host)
    app = create_app(models, checkpoints, device, limits, hosts)
    _check_free(host, port)
    print(f"inpaintlab: serving on http://{host}:{port}/ (API schema at /openapi.json)", flush=True)
    # idle connections close after 5 s, at most 64 connections (then 503), and one SIGTERM stops the server
    # within 10 s even with a job in flight
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_keep_alive=5,
        limit_concurrency=64,
        timeout_graceful_shutdown=10,
    )


__all__ = ["BodyLimitMiddleware", "ModelCatalog", "SameOriginMiddleware", "ServerLimits", "create_app", "serve"]
