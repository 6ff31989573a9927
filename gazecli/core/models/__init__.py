"""Models: VAT / VAT-GC students (vat.py), the small GazeWorld student (gazeworld_student.py),
backbones, the diffusion denoiser (diffusion_unet.py).

`build_model(name, config)` is the one place a model name becomes a module; checkpoints store
{"name", "config"} so `load_checkpoint` can rebuild what was trained.
"""

from __future__ import annotations

STUDENT_MODELS = ("vat", "vat-gc", "gw-student")
DIFFUSION_MODELS = ("diffusion", "diffusion-mean-teacher")  # the annotation prior; the second holds two networks


def build_model(name: str, config: dict):
    """A model from its registry name and config dict (as stored in checkpoints)."""
    if name == "gw-student":
        from gazecli.core.models.gazeworld_student import GazeWorldConfig, GazeWorldStudent

        return GazeWorldStudent(GazeWorldConfig.from_dict(config))
    if name in STUDENT_MODELS:
        from gazecli.core.models.vat import VATConfig, VATModel

        cfg = dict(config)
        cfg["gradcam"] = name == "vat-gc"
        return VATModel(VATConfig(**cfg))
    if name in DIFFUSION_MODELS:
        # config: {"encoder": VATConfig fields, "denoiser": DenoiserConfig fields, "scheduler": HeatmapScheduler
        # fields}; the scheduler owns no weights and is rebuilt by the stages (train_diffusion.build_scheduler)
        from gazecli.core.models.diffusion_unet import DenoiserConfig, GazeDiffusionModel
        from gazecli.core.models.vat import VATConditionEncoder, VATConfig

        def network():
            if config["encoder"].get("model") == "gw-student":  # the GazeWorld student's trunk
                from gazecli.core.models.gazeworld_student import GazeWorldConfig, GazeWorldEncoder

                encoder = GazeWorldEncoder(GazeWorldConfig.from_dict(config["encoder"]))
            else:
                encoder = VATConditionEncoder(VATConfig(**{k: v for k, v in config["encoder"].items() if k != "model"},
                                                        gradcam=False))
            return GazeDiffusionModel.build(encoder, DenoiserConfig(**config["denoiser"]))

        if name == "diffusion":
            return network()
        from gazecli.core.models.mean_teacher import StudentTeacher

        return StudentTeacher(network(), network(), teacher_train_mode=bool(config.get("teacher_train_mode", False)))
    raise ValueError(f"unknown model {name!r}")
