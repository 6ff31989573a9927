"""gazecli: semi-supervised gaze following from few labels (the `gaze` command).

Importing this package is cheap: torch, torchvision and transformers are imported only by the
functions that need them.
"""

__version__ = "0.1.0"
