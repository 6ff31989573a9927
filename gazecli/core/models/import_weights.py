"""Import the authors' released weights (GCDR's diffusion teacher, Chong et al.'s VAT models,
VAT-GC) into a gazecli run folder (docs/import-weights.md).

Reading: `torch.load(weights_only=True)`, which rebuilds tensors and plain containers only. Some
released files also hold objects that loader refuses (an `argparse.Namespace` of the training
options); those go through `TorchZipUnpickler`, the project's restricted unpickler (see
`gazecli/core/gradcam/authors.py`) taught torch's zip layout: it rebuilds tensors from the
archive's raw storages, plain containers and numbers, turns a Namespace into an inert record
without importing anything, and refuses every other name. Plain `pickle` never runs.

Mapping: the state dict is found under 'model' / 'state_dict' (any nesting), 'module.' prefixes
are dropped, then every key is renamed by an explicit table of module prefixes (`KEY_MAPS`).
A key the table does not cover, a model tensor the file lacks, or a tensor of another shape is
an error that lists them all on one line. The result is written the way the engine writes
checkpoints (safetensors + JSON sidecar) into `OUT/weights/best.safetensors`, so
`--checkpoint`, `--teacher-checkpoint` and `--init` take the folder.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch

from gazecli.core.constants import IMPORT_KINDS
from gazecli.core.errors import DataError
from gazecli.core.gradcam.authors import RestrictedUnpickler, UnsafePickleError


# the VAT trunk and heads: Chong et al.'s module names, which gazecli's VATModel keeps
_PATHWAY = [f"{part}_{side}" for side in ("scene", "face")
            for part in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "layer5")]
_VAT_HEADS = ["compress_conv1", "compress_bn1", "compress_conv2", "compress_bn2", "compress_conv1_inout",
              "compress_bn1_inout", "compress_conv2_inout", "compress_bn2_inout", "fc_inout", "deconv1",
              "deconv_bn1", "deconv2", "deconv_bn2", "deconv3", "deconv_bn3", "conv4"]

# kind -> [(official module prefix, gazecli module prefix)]; a key maps by its longest matching prefix
KEY_MAPS: dict[str, list[tuple[str, str]]] = {
    "vat": [(m, m) for m in _PATHWAY + ["attn"] + _VAT_HEADS],  # ModelSpatial
    "vat-gc": [(m, m) for m in _PATHWAY + ["attn"] + _VAT_HEADS],  # ModelSpatial_GradCAM (attn reads 2064)
    "diffusion": (  # GF_Diffusion_Model_new
        [(f"feat_extractor.{m}", f"encoder.{m}") for m in _PATHWAY + ["attn"]]
        + [("diffusion_model", "unet"),  # the guided-diffusion UNet: same inner names
           ("compress_conv1", "pyramid.compress.0"), ("compress_bn1", "pyramid.compress.1"),
           ("upsample_2", "pyramid.ups.2.0"), ("upsample2_bn", "pyramid.ups.2.1"),  # 8 -> 16
           ("upsample_1", "pyramid.ups.1.0"), ("upsample1_bn", "pyramid.ups.1.1"),  # 16 -> 32
           ("upsample_0", "pyramid.ups.0.0"), ("upsample0_bn", "pyramid.ups.0.1")]  # 32 -> 64
    ),
}

# BatchNorm counters that files written by old PyTorch versions lack; they carry no weights
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def paper_config(kind: str) -> dict:
    """The model config of the authors' networks (paper sizes), as `build_model` takes it."""
    from gazecli.core.models.vat import VATConfig

    if kind in ("vat", "vat-gc"):
        return {k: v for k, v in asdict(VATConfig()).items() if k != "gradcam"}
    from gazecli.core.diffusion import HeatmapScheduler
    from gazecli.core.models.configs import DenoiserConfig

    encoder = {k: v for k, v in asdict(VATConfig(inout=False)).items() if k != "gradcam"}
    denoiser = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(DenoiserConfig()).items()
                if k != "cond_channels"}
    scheduler = {k: v for k, v in asdict(HeatmapScheduler()).items() if k != "compat"}
    return {"encoder": encoder, "denoiser": denoiser, "scheduler": scheduler}


# ------------------------------------------------------------------------------------------ reading
class _Storage:
    """A storage read from the archive: a flat tensor of its dtype."""

    def __init__(self, flat: torch.Tensor):
        self.flat = flat


class _Record(dict):
    """What an `argparse.Namespace` becomes: its attributes as a dict; nothing is imported."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor must be rebuilt from an archive storage")
    return torch.as_strided(storage.flat, tuple(size), tuple(stride), int(storage_offset)).clone()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter must wrap a tensor")
    return data


class TorchZipUnpickler(RestrictedUnpickler):
    """The restricted unpickler over a torch zip archive's data.pkl: storages come from the
    archive's raw records (persistent ids), tensors are strided views of them, copied."""

    _EXTRA = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("argparse", "Namespace"): _Record,
        **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
    }

    def __init__(self, file, source: str, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file, source)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if (module, name) in self._EXTRA:
            return self._EXTRA[(module, name)]
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"{self.source}: refused to load: an unknown persistent reference")
        _, kind, key, _location, numel = pid
        raw = self.archive.read(f"{self.prefix}data/{key}")
        flat = torch.frombuffer(bytearray(raw), dtype=kind.dtype) if raw else torch.empty(0, dtype=kind.dtype)
        if flat.numel() < int(numel):
            raise pickle.UnpicklingError(f"storage {key}: {flat.numel()} values, expected {numel}")
        return _Storage(flat)


def _restricted_torch_load(path: Path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("data.pkl") and n.count("/") == 1), None)
        if pkl is None:
            raise DataError(f"{path.name}: a zip file without a torch data.pkl")
        prefix = pkl[: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in names and archive.read(order).strip() not in (b"little", b""):
            raise DataError(f"{path.name}: a big-endian torch file (not supported)")
        with archive.open(pkl) as f:
            try:
                return TorchZipUnpickler(f, path.name, archive, prefix).load()
            except UnsafePickleError:
                raise
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                    RuntimeError) as e:
                raise DataError(f"{path.name}: not a readable torch file ({e.__class__.__name__}: "
                                f"{' '.join(str(e).split())[:200]})") from None


def read_torch_file(path: Path):
    """The object in a torch file: weights_only first, then the restricted unpickler for zip
    archives weights_only refused (e.g. one that also holds an argparse Namespace)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as refusal:
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path.name}: the weights-only loader refused it and it is not a torch zip archive "
                            f"({' '.join(str(refusal).split())[:160]})") from None
        return _restricted_torch_load(path)
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file
        raise DataError(f"{path.name}: not a readable torch file ({e.__class__.__name__}: "
                        f"{' '.join(str(e).split())[:160]})") from None


def find_state_dict(obj) -> dict[str, torch.Tensor]:
    """The tensors under 'model' / 'state_dict' (at any depth), without 'module.' prefixes."""
    while isinstance(obj, dict):
        inner = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError("no state dict (a dict of tensors, possibly under 'model' or 'state_dict') in the file")
    out = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            name = str(key)
            while name.startswith("module."):
                name = name[len("module."):]
            out[name] = value
    return out


# ------------------------------------------------------------------------------------------ mapping
def map_keys(state: dict[str, torch.Tensor], kind: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(renamed tensors, official keys no table entry covers)."""
    table = sorted(KEY_MAPS[kind], key=lambda rule: -len(rule[0]))
    mapped, unmapped = {}, []
    for key, tensor in state.items():
        for theirs, ours in table:
            if key == theirs or key.startswith(theirs + "."):
                mapped[ours + key[len(theirs):]] = tensor
                break
        else:
            unmapped.append(key)
    return mapped, unmapped


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def convert(state: dict[str, torch.Tensor], kind: str, config: dict, source: str = "weights"):
    """(model with the imported tensors, its state dict): every key mapped, every model tensor
    present (BatchNorm counters may be absent: they are zero), every shape equal."""
    from gazecli.core.models import build_model

    if kind not in IMPORT_KINDS:
        raise DataError(f"--kind {kind}: one of {', '.join(IMPORT_KINDS)}")
    mapped, unmapped = map_keys(state, kind)
    model = build_model(kind, config)
    own = model.state_dict()
    unknown = sorted(k for k in mapped if k not in own)
    missing = sorted(k for k in own if k not in mapped and not k.endswith(OPTIONAL_SUFFIXES))
    shapes = sorted(f"{k} {tuple(mapped[k].shape)} (expected {tuple(own[k].shape)})" for k in mapped
                    if k in own and mapped[k].shape != own[k].shape)
    problems = []
    if unmapped or unknown:
        problems.append(f"{len(unmapped) + len(unknown)} keys not in the {kind} key map: "
                        f"{_listing(sorted(unmapped) + unknown)}")
    if missing:
        problems.append(f"{len(missing)} {kind} tensors missing: {_listing(missing)}")
    if shapes:
        problems.append(f"{len(shapes)} of another shape: {_listing(shapes, 6)}")
    if problems:
        raise DataError(f"{source}: not a {kind} checkpoint in the authors' layout: " + "; ".join(problems))
    full = {k: mapped.get(k, torch.zeros_like(v)).to(v.dtype) for k, v in own.items()}
    model.load_state_dict(full)
    return model, full


def import_weights(path: Path, kind: str, out: Path, config: dict | None = None) -> dict:
    """Read `path`, convert it as `kind`, write the run folder `out`. Returns a summary dict.
    `config` overrides the paper-size model config (tests use small models)."""
    from gazecli._version import __version__
    from gazecli.core.data.transforms import SampleConfig
    from gazecli.core.engine.checkpoint import save_checkpoint
    from gazecli.core.engine.runs import RunDir

    path, out = Path(path), Path(out)
    if kind not in IMPORT_KINDS:
        raise DataError(f"--kind {kind}: one of {', '.join(IMPORT_KINDS)}")
    target = RunDir(out).best()
    if target.exists():
        raise DataError(f"{out}: already holds imported weights ({target.name}); choose another --out")
    raw = read_torch_file(path)
    try:
        state = find_state_dict(raw)
    except DataError as e:
        raise DataError(f"{path.name}: {e}") from None
    config = config or paper_config(kind)
    model, full = convert(state, kind, config, path.name)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    vat_sizes = config if kind != "diffusion" else config["encoder"]
    sample = asdict(SampleConfig(input_size=vat_sizes.get("input_size", 224), face_size=vat_sizes.get("face_size", 224),
                                 heatmap_size=vat_sizes.get("heatmap_size", 64)))
    meta = {
        "command": "import-weights", "epoch": None, "step": None, "version": __version__,
        "model": {"name": kind, "config": config},
        "sample": sample,
        "settings": {"compat": False},
        "imported": {"source": str(path), "sha256": digest.hexdigest(), "kind": kind, "tensors": len(state),
                     "filled": sorted(set(full) - set(map_keys(state, kind)[0]))},
    }
    save_checkpoint(target, full, meta)
    return {"out": str(out), "weights": str(target), "tensors": len(state),
            "parameters": sum(p.numel() for p in model.parameters()), "kind": kind,
            "filled": meta["imported"]["filled"]}
