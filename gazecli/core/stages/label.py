"""`gaze label`: the labelling page over a folder of images, and `--export` (docs/labelling.md).

The session, the journal, the export, the page and the model suggestions are the library in
`gazecli.core.label`; this stage puts them together for one settings object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from gazecli.core.label.session import META_NAME, LabelSession, list_images
from gazecli.core.label.suggest import ModelSuggester, read_suggested_heads

Progress = Callable[[int, int], None]


def images_folder(settings) -> Path:
    """IMAGES, or the folder ROOT already labels (ROOT/label.json)."""
    if settings.images is not None:
        return Path(settings.images)
    return Path(json.loads((Path(settings.out) / META_NAME).read_text(encoding="utf-8"))["images"])


def labelling_order(settings, keys: list[str], suggester: ModelSuggester | None,
                    progress: Progress | None = None) -> list[str]:
    if settings.order == "random":
        return [keys[i] for i in np.random.default_rng([settings.seed, 3]).permutation(len(keys))]
    if settings.order == "uncertain":
        from gazecli.core.label.uncertainty import uncertain_order

        scores = {}
        for i, key in enumerate(keys):
            scores[key] = suggester.uncertainty(key)
            if progress is not None:
                progress(i + 1, len(keys))
        return uncertain_order(keys, scores)
    return list(keys)


def open_session(settings, progress: Progress | None = None, lock: bool = True):
    """(session, suggester or None) for the settings."""
    folder = images_folder(settings)
    suggester = None
    if settings.checkpoint is not None:
        heads = read_suggested_heads(settings.heads_csv) if settings.heads_csv is not None else None
        suggester = ModelSuggester(settings.checkpoint, folder, settings.device, heads)
    order = labelling_order(settings, list_images(folder), suggester, progress)
    return LabelSession(folder, settings.out, order=order, lock=lock), suggester


def run_export(settings) -> dict:
    """`gaze label --export`: the dataset of the finished images (ROOT/dataset)."""
    from gazecli.core.label.export import export_dataset

    session = LabelSession(images_folder(settings), settings.out)
    try:
        return export_dataset(session, test_fraction=settings.test_fraction, seed=settings.seed)
    finally:
        session.close()


def run_label(settings, on_ready: Callable[[str, LabelSession], None], opened=None) -> LabelSession:
    """Serve the page on 127.0.0.1 until interrupted; `on_ready(url, session)` once it listens.
    `opened`: what `open_session(settings)` returned (opened here when None)."""
    try:
        from gazecli.core.label.server import build_app, loopback_socket, serve
    except ModuleNotFoundError as e:
        from gazecli.core.errors import SettingsError

        raise SettingsError(f"gaze label needs {e.name}: pip install 'gazecli[label]'") from None

    session, suggester = opened if opened is not None else open_session(settings)
    try:
        app = build_app(session, suggester, {"test_fraction": settings.test_fraction, "seed": settings.seed},
                        settings.order)
        sock = loopback_socket(settings.port)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"

        def started() -> None:
            on_ready(url, session)
            if settings.open:
                import webbrowser

                webbrowser.open(url)

        serve(app, sock, started)
    finally:
        session.close()
    return session
