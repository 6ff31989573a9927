"""gazecli: semi-supervised gaze following from few labels (the `gaze` command).

Importing this package is cheap: torch, torchvision and transformers are imported only by the
functions that need them.
"""

from gazecli._version import __version__

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    if name == "Predictor":  # `from gazecli import Predictor` without importing torch up front
        from gazecli.core.stages.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'gazecli' has no attribute {name!r}")
