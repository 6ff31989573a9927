"""Every command's settings model (pydantic only, no torch): base.py holds the base class, its
loader and the shared field types; one module per command family holds the models."""

from gazecli.core.settings.base import GazeSettings, load_settings, option_sources, to_toml
from gazecli.core.settings.data import BaselineSettings, CheckSettings, SplitSettings, SynthSettings, TrainVQASettings
from gazecli.core.settings.demo import DemoSettings
from gazecli.core.settings.diffusion import DiffusionSettings, MeanTeacherSettings, TrainDiffusionSettings
from gazecli.core.settings.evaluate import EvalSettings, PredictSettings
from gazecli.core.settings.gradcam import GradcamSettings
from gazecli.core.settings.import_weights import ImportWeightsSettings
from gazecli.core.settings.label import LabelSettings
from gazecli.core.settings.option_source import flag_name
from gazecli.core.settings.train import PRESETS, TrainSettings, TrainStudentSettings

__all__ = ["PRESETS", "BaselineSettings", "CheckSettings", "DemoSettings", "DiffusionSettings", "EvalSettings",
           "GazeSettings", "GradcamSettings", "ImportWeightsSettings", "LabelSettings", "MeanTeacherSettings",
           "PredictSettings", "SplitSettings", "SynthSettings", "TrainDiffusionSettings", "TrainSettings", "TrainStudentSettings",
           "TrainVQASettings", "flag_name", "load_settings", "option_sources", "to_toml"]
