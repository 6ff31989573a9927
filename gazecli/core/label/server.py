"""The labelling page: a Starlette app over a LabelSession, served by uvicorn on 127.0.0.1.

Every request that would change something is checked first (`LabelSession.act`); a refused one
answers `{"error": "..."}` with a 4xx status, which the page shows, and writes nothing.
The HTML, JavaScript and CSS ship in `static/` (no CDN).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Callable, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gazecli.core.errors import GazeError
from gazecli.core.label.export import export_dataset
from gazecli.core.label.session import LabelError, LabelSession, check_head_box

STATIC_DIR = Path(__file__).with_name("static")


class Suggester(Protocol):
    """Model suggestions for the page (built by the label stage from a checkpoint)."""

    def persons(self, key: str) -> list[dict]:
        """Suggested persons of an image: [{head_box_xyxy_px, gaze_xy_px, inout}] (inout: probability or None)."""

    def gaze(self, key: str, head_box_xyxy_px: list[float]) -> dict:
        """The suggested gaze of a drawn head box: {gaze_xy_px, inout}."""


def build_app(session: LabelSession, suggester: Suggester | None = None, export_options: dict | None = None,
              order_name: str = "file") -> Starlette:
    lock = threading.Lock()  # requests run in a thread pool: one change at a time
    export_options = dict(export_options or {})

    def error(e: GazeError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=getattr(e, "status", 400))

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            raise LabelError("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise LabelError("the request body must be a JSON object")
        return data

    def state_json() -> dict:
        return {"images": [{"key": k, "width": session.images[k].width, "height": session.images[k].height,
                            "status": session.images[k].status, "persons": len(session.images[k].persons)}
                           for k in session.order],
                "cursor": session.resume_index(), "progress": session.progress(), "suggestions": suggester is not None,
                "order": order_name, "root": str(session.root)}

    async def index(request: Request):
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def state(request: Request):
        with lock:
            return JSONResponse(state_json())

    async def image_file(request: Request):
        try:
            image = session.image(request.query_params.get("key"))
        except LabelError as e:
            return error(e)
        return FileResponse(session.images_dir / image.key)

    async def labels(request: Request):
        try:
            with lock:
                image = session.image(request.query_params.get("key"))
                return JSONResponse({"image": image.to_json(), "progress": session.progress()})
        except LabelError as e:
            return error(e)

    async def claim(request: Request):
        try:
            data = await body(request)
            with lock:
                session.claim(data.get("tab"))
            return JSONResponse({"ok": True})
        except LabelError as e:
            return error(e)

    async def action(request: Request):
        try:
            data = await body(request)
            tab = data.pop("tab", None)
            with lock:
                image = session.act(data, tab)
                return JSONResponse({"image": image.to_json(), "progress": session.progress()})
        except LabelError as e:
            return error(e)

    async def suggest(request: Request):
        try:
            if suggester is None:
                raise LabelError("no model suggestions: start gaze label with --checkpoint RUN", 404)
            key = session.image(request.query_params.get("key")).key
            return JSONResponse({"persons": suggester.persons(key)})
        except LabelError as e:
            return error(e)

    async def suggest_gaze(request: Request):
        try:
            if suggester is None:
                raise LabelError("no model suggestions: start gaze label with --checkpoint RUN", 404)
            data = await body(request)
            image = session.image(data.get("key"))
            box = check_head_box(data.get("head_box_xyxy_px"), image)
            return JSONResponse(suggester.gaze(image.key, box))
        except LabelError as e:
            return error(e)

    async def export(request: Request):
        try:
            data = await body(request)
            with lock:
                session.claim(data.get("tab"))
                summary = export_dataset(session, **export_options)
            return JSONResponse(summary)
        except GazeError as e:
            return error(e)

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/image", image_file),
        Route("/api/labels", labels),
        Route("/api/claim", claim, methods=["POST"]),
        Route("/api/action", action, methods=["POST"]),
        Route("/api/suggest", suggest),
        Route("/api/suggest-gaze", suggest_gaze, methods=["POST"]),
        Route("/api/export", export, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes)


def loopback_socket(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: a free one), so the port is known before serving."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise LabelError(f"--port {port}: cannot listen on 127.0.0.1 ({e.strerror})") from None
    sock.listen(128)
    return sock


def serve(app: Starlette, sock: socket.socket, on_started: Callable[[], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    if on_started is not None:
        threading.Thread(target=_when_started, args=(server, on_started), daemon=True).start()
    server.run(sockets=[sock])


def _when_started(server, callback: Callable[[], None]) -> None:
    import time

    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        callback()
