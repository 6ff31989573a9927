"""`gaze label`: label your own images in the browser (docs/labelling.md).

- `journal.py`: the append-only journal under ROOT (every click, fsynced; a torn last line is dropped);
- `session.py`: the labelling state replayed from the journal, and the validation of every action;
- `export.py`: the GazeFollow-layout dataset written from the finished images;
- `uncertainty.py`: how unsure a model is about an image (the `--order uncertain` score);
- `suggest.py`: suggestions from a trained student (head boxes, gaze, the uncertainty of an image);
- `server.py`: the local web page (Starlette), with its HTML/JS/CSS in `static/`.

The settings are `gazecli.core.settings.LabelSettings`; the stage `core/stages/label.py` puts these
together. Nothing here imports starlette, uvicorn or torch at module level except `server.py`,
which only the stage's run imports.
"""
