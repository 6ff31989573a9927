"""The labelling state of one ROOT: the images, each image's persons and status, replayed from the
journal; every action is checked here before it is written (docs/labelling.md).

Coordinates are pixels of the full-resolution image: `head_box_xyxy_px` in [0, W] x [0, H],
`gaze_xy_px` in the same frame; a person looking out of the frame has `inout` 0 and no point.

Actions (the journal's `op`):
- `head`: a new person with this head box (their gaze comes next);
- `gaze` / `outside`: the gaze of the person still waiting for one;
- `person`: a whole person at once (a suggestion accepted, or a suggested box with a clicked point);
- `undo`: take back the image's last `head`, `gaze`, `outside` or `person`;
- `done`: the image is finished (every person has a gaze; at least one person);
- `skip`: leave the image out of the dataset.
Any change to an image's persons reopens it (clears `done` and `skip`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gazecli.core.data.images import IMAGE_SUFFIXES, image_size_wh
from gazecli.core.errors import DataError
from gazecli.core.io import write_json
from gazecli.core.label.journal import Journal

META_NAME = "label.json"
LOCK_NAME = ".label.lock"
EDIT_OPS = ("head", "gaze", "outside", "person")
OPS = (*EDIT_OPS, "undo", "done", "skip")
MIN_BOX_PX = 1.0  # a head box narrower or lower than this is "of zero size"


class LabelError(DataError):
    """A request the page should refuse (shown in the page; nothing is written). `status` is the
    HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Person:
    head_box_xyxy_px: list[float]
    gaze_xy_px: list[float] | None = None
    inout: int | None = None  # 1 in frame, 0 outside, None: gaze not given yet
    source: str = "drawn"  # drawn | suggested | suggested-head

    @property
    def complete(self) -> bool:
        return self.inout is not None

    def to_json(self) -> dict:
        return {"head_box_xyxy_px": self.head_box_xyxy_px, "gaze_xy_px": self.gaze_xy_px, "inout": self.inout,
                "source": self.source}


@dataclass
class ImageState:
    key: str  # path relative to the images folder, '/'-separated
    width: int
    height: int
    persons: list[Person] = field(default_factory=list)
    done: bool = False
    skipped: bool = False
    history: list[tuple[str, int]] = field(default_factory=list)  # (op, person index) for undo

    @property
    def status(self) -> str:
        return "done" if self.done else "skipped" if self.skipped else "open" if self.persons else "todo"

    def to_json(self) -> dict:
        return {"key": self.key, "width": self.width, "height": self.height, "status": self.status,
                "persons": [p.to_json() for p in self.persons]}


def list_images(folder: Path) -> list[str]:
    """Every image under `folder` (recursively), as sorted '/'-separated relative paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: images folder not found")
    keys = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not keys:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return keys


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise LabelError(f"{what} must be a number, got {json.dumps(value)}")
    return float(value)


def check_point(value, image: ImageState, what: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise LabelError(f"{what} must be [x, y] in pixels")
    x, y = (_number(v, what) for v in value)
    if not (0 <= x <= image.width and 0 <= y <= image.height):
        raise LabelError(f"{what} ({x:.1f}, {y:.1f}) lies outside the {image.width}x{image.height} image {image.key}")
    return [round(x, 2), round(y, 2)]


def check_head_box(value, image: ImageState) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise LabelError("the head box must be [x1, y1, x2, y2] in pixels")
    x1, y1, x2, y2 = (_number(v, "the head box") for v in value)
    for x, y in ((x1, y1), (x2, y2)):
        if not (0 <= x <= image.width and 0 <= y <= image.height):
            raise LabelError(f"the head box corner ({x:.1f}, {y:.1f}) lies outside the {image.width}x{image.height} "
                             f"image {image.key}")
    if x2 - x1 < MIN_BOX_PX or y2 - y1 < MIN_BOX_PX:
        raise LabelError(f"the head box is {max(0.0, x2 - x1):.1f} x {max(0.0, y2 - y1):.1f} px: a box needs a size "
                         f"(drag from one corner to the other)")
    return [round(v, 2) for v in (x1, y1, x2, y2)]


class LabelSession:
    """The images of IMAGES and their labels under ROOT; `act(action)` validates, journals, applies.

    One server per ROOT (a lock file); one writing page at a time (`claim`)."""

    TAB_LEASE_S = 15.0  # a page that has not been heard from for this long gives up its claim

    def __init__(self, images_dir: Path, root: Path, order: list[str] | None = None, lock: bool = True):
        self.images_dir = Path(images_dir)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_file = None
        if lock:
            self._take_lock()
        keys = list_images(self.images_dir)
        self._write_meta(keys)
        self.images: dict[str, ImageState] = {}
        for key in keys:
            w, h = image_size_wh(self.images_dir / key)
            self.images[key] = ImageState(key, w, h)
        self.order = list(order) if order is not None else keys
        self.journal = Journal(self.root)
        self.last_key: str | None = None
        for number, event in enumerate(self.journal.events, start=1):
            try:
                self._apply(event)
            except LabelError as e:
                where = f"{self.journal.path.name}:{number}"
                if e.status == 404:
                    raise DataError(f"{where}: {event.get('image')} was labelled but is no longer in "
                                    f"{self.images_dir}; put it back") from None
                raise DataError(f"{where}: cannot replay ({e})") from None
        self.tab: str | None = None
        self.tab_seen = 0.0

    # ------------------------------------------------------------------ files
    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock (one server per folder is then up to you)
            return
        f = open(self.root / LOCK_NAME, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise DataError(f"{self.root}: another gaze label server is using this folder (stop it first)") from None
        self._lock_file = f

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _write_meta(self, keys: list[str]) -> None:
        path = self.root / META_NAME
        meta = {"images": str(self.images_dir.resolve()), "n_images": len(keys)}
        if path.is_file():
            old = json.loads(path.read_text(encoding="utf-8"))
            if Path(old.get("images", "")) != self.images_dir.resolve():
                raise DataError(f"{self.root} labels the images of {old.get('images')}, not {self.images_dir.resolve()} "
                                f"(use another --out)")
            return
        write_json(path, meta)

    # ------------------------------------------------------------------ tabs
    def claim(self, tab: str, now: float | None = None) -> None:
        """Let page `tab` write; refuse while another page holds a live claim."""
        now = time.monotonic() if now is None else now
        if not isinstance(tab, str) or not tab:
            raise LabelError("this page has no session id; reload it", 400)
        if self.tab not in (None, tab) and now - self.tab_seen < self.TAB_LEASE_S:
            raise LabelError("this folder is being labelled in another browser tab; close this tab (or the other "
                             f"one and wait {self.TAB_LEASE_S:.0f} s)", 409)
        self.tab = tab
        self.tab_seen = now

    # ------------------------------------------------------------------ actions
    def image(self, key) -> ImageState:
        if not isinstance(key, str) or key not in self.images:
            raise LabelError(f"unknown image {json.dumps(key)}", 404)
        return self.images[key]

    def act(self, action: dict, tab: str) -> ImageState:
        """Check `action`, write it to the journal, apply it; a LabelError writes nothing."""
        self.claim(tab)
        if not isinstance(action, dict):
            raise LabelError("an action must be a JSON object")
        event = self._check(action)
        event = {"seq": len(self.journal.events) + 1, "time": round(time.time(), 3), **event}
        self.journal.append(event)
        return self._apply(event)

    def _check(self, action: dict) -> dict:
        """The event to journal for `action`, or a LabelError saying what is wrong with it."""
        op = action.get("op")
        if op not in OPS:
            raise LabelError(f"unknown action {json.dumps(op)} (known: {', '.join(OPS)})")
        image = self.image(action.get("image"))
        waiting = [p for p in image.persons if not p.complete]
        event: dict = {"op": op, "image": image.key}
        if op in ("head", "person"):
            if waiting:
                raise LabelError("give the gaze of the person whose head box is drawn first (click the point, or o "
                                 "for outside)")
            event["head_box_xyxy_px"] = check_head_box(action.get("head_box_xyxy_px"), image)
        if op == "person":
            inout = action.get("inout")
            if inout not in (0, 1):
                raise LabelError("a person needs inout 1 (with a point) or 0 (looking outside)")
            event["inout"] = inout
            event["gaze_xy_px"] = check_point(action.get("gaze_xy_px"), image, "the gaze point") if inout else None
            source = action.get("source", "suggested")
            if source not in ("drawn", "suggested", "suggested-head"):
                raise LabelError(f"unknown source {json.dumps(source)}")
            event["source"] = source
        if op in ("gaze", "outside"):
            if not waiting:
                raise LabelError("draw a head box first (drag over the head), then give its gaze")
            if op == "gaze":
                event["gaze_xy_px"] = check_point(action.get("gaze_xy_px"), image, "the gaze point")
        if op == "undo" and not image.history:
            raise LabelError(f"nothing to undo on {image.key}")
        if op == "done":
            if waiting:
                raise LabelError("the last person has no gaze yet (click the point, or o for outside)")
            if not image.persons:
                raise LabelError("no person labelled on this image: draw a head box, or s to skip the image")
        return event

    def _apply(self, event: dict) -> ImageState:
        op = event.get("op")
        image = self.image(event.get("image"))
        self.last_key = image.key
        if op in EDIT_OPS or op == "undo":
            image.done = image.skipped = False
        if op == "head":
            image.persons.append(Person(list(event["head_box_xyxy_px"])))
            image.history.append(("head", len(image.persons) - 1))
        elif op == "person":
            image.persons.append(Person(list(event["head_box_xyxy_px"]), event.get("gaze_xy_px"), event["inout"],
                                        event.get("source", "suggested")))
            image.history.append(("person", len(image.persons) - 1))
        elif op in ("gaze", "outside"):
            index = next(i for i, p in enumerate(image.persons) if not p.complete)
            person = image.persons[index]
            person.gaze_xy_px = list(event["gaze_xy_px"]) if op == "gaze" else None
            person.inout = 1 if op == "gaze" else 0
            image.history.append((op, index))
        elif op == "undo":
            kind, index = image.history.pop()
            if kind in ("head", "person"):
                image.persons.pop(index)
            else:
                image.persons[index].gaze_xy_px = None
                image.persons[index].inout = None
        elif op == "done":
            image.done = True
        elif op == "skip":
            image.skipped = True
        elif op in OPS:
            pass
        else:
            raise LabelError(f"unknown action {json.dumps(op)}")
        return image

    # ------------------------------------------------------------------ views
    def progress(self) -> dict:
        states = list(self.images.values())
        return {"images": len(states), "done": sum(s.done for s in states), "skipped": sum(s.skipped for s in states),
                "persons": sum(len(s.persons) for s in states if s.done),
                "persons_outside": sum(p.inout == 0 for s in states if s.done for p in s.persons)}

    def resume_index(self) -> int:
        """Where the page opens: the last image touched when it is still open, else the first image
        (in the labelling order) that is neither done nor skipped, else the last touched one."""
        if self.last_key is not None and self.images[self.last_key].status in ("open", "todo"):
            return self.order.index(self.last_key)
        for i, key in enumerate(self.order):
            if self.images[key].status in ("open", "todo"):
                return i
        return self.order.index(self.last_key) if self.last_key is not None else 0
