"""The training loop every `gaze train-*` command shares.

A command describes *what* to train in a `TrainSpec` (model, optimizer, scheduler, dataset,
batch order, loss, evaluation); `train()` does the rest the same way for all of them: device
and mixed precision, DDP under torchrun, a run folder, per-step and per-epoch logs, curves,
checkpoints that resume exactly (model, optimizer, scheduler, scaler, RNG, position in the
epoch), a NaN guard, model selection on the validation split and one final test evaluation with
the best weights.

Exact resumption rests on three facts: batch orders depend only on (seed, epoch) (see
sampling.py), a sample's augmentation only on (seed, epoch, index) (see data/dataset.py), and
randomness inside a loss (diffusion noise) comes from `StepContext.generator`, seeded by
(seed, global step) rather than from the global RNG.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn as nn

from gazecli._version import __version__
from gazecli.core.engine import distributed as dist_utils
from gazecli.core.engine.checkpoint import load_checkpoint, load_weights_into, save_checkpoint
from gazecli.core.engine.precision import autocast, grad_scaler, resolve_precision
from gazecli.core.engine.runs import RunDir, new_run_dir
from gazecli.core.engine.sampling import EpochBatches
from gazecli.core.engine.seed import rng_state, seed_everything, set_rng_state
from gazecli.core.errors import GazeError
from gazecli.core.io import write_json


class TrainingDiverged(GazeError):
    """A NaN or infinite loss: the run stops, the last good checkpoint stays."""


class TrainingInterrupted(GazeError):
    """Ctrl-C during training: one line that says how to continue."""

    exit_code = 130


class Reporter(Protocol):
    def run_started(self, run_dir: Path, epochs: int, start_epoch: int) -> None: ...
    def epoch_started(self, epoch: int, epochs: int, n_steps: int, done: int) -> None: ...
    def step(self, done: int, n_steps: int, logs: dict) -> None: ...
    def epoch_finished(self, epoch: int, row: dict) -> None: ...
    def message(self, text: str) -> None: ...


CURVES_EVERY_S = 60.0  # curves.png is redrawn at most this often, and after the last epoch


class SilentReporter:
    def run_started(self, run_dir, epochs, start_epoch): pass
    def epoch_started(self, epoch, epochs, n_steps, done): pass
    def step(self, done, n_steps, logs): pass
    def epoch_finished(self, epoch, row): pass
    def message(self, text): pass


class Callback:
    """Code that hooks into the loop without editing it; override what is needed. Every process
    calls them (an update of the weights must happen on every rank)."""

    def on_train_start(self, run_dir: Path, start_epoch: int) -> None:
        pass

    def on_step_end(self, step: int, logs: dict) -> None:
        """After the optimiser step `step` (1-based, counted over the whole run)."""

    def on_epoch_end(self, epoch: int, row: dict) -> None:
        """After epoch `epoch` (0-based) with its metrics.csv row."""


@dataclass
class StepContext:
    """What a loss function gets besides the batch."""

    step: int  # global optimiser step (1-based)
    epoch: int
    device: torch.device
    generator: torch.Generator  # seeded by (seed, step): reproducible noise, also across resumes


@dataclass
class TrainSpec:
    command: str  # "train-student": the run folder's parent
    settings: Any  # the resolved settings model (saved as TOML and in checkpoints)
    settings_toml: str
    model: nn.Module
    model_meta: dict  # {"name": ..., "config": {...}}: enough to rebuild the model
    optimizer: torch.optim.Optimizer
    dataset: Any  # a Dataset with set_epoch(epoch)
    batches: EpochBatches
    loss_fn: Callable[[nn.Module, dict, StepContext], tuple[torch.Tensor, dict]]
    epochs: int
    scheduler: Any = None  # stepped once per epoch
    evaluate_fn: Callable[[nn.Module, str], dict] | None = None  # split -> metrics (rank 0 gets them)
    select_metric: str = "avg_l2"
    select_mode: str = "min"  # "min" or "max"
    select_on: str = "val"  # "val" (held out) or "test" (the official habit)
    eval_every: int = 1
    checkpoint_every: int = 0  # also save `last` every N steps (0: at epoch ends only)
    callbacks: list[Callback] = field(default_factory=list)  # e.g. an EMA update after every step
    extra_meta: dict = field(default_factory=dict)
    grad_clip: float = 0.0


@dataclass
class TrainResult:
    run_dir: Path
    best: Path | None
    last: Path
    test_metrics: dict | None
    best_metric: float | None
    epochs_done: int
    files: list[Path] = field(default_factory=list)


def _to_device(batch: dict, device, non_blocking: bool) -> dict:
    return {k: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _better(value: float, best: float | None, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def train(spec: TrainSpec, device: torch.device, precision: str, seed: int, project: Path, name: str,
          resume: Path | None = None, workers: int = 0, reporter: Reporter | None = None) -> TrainResult:
    reporter = reporter or SilentReporter()
    info = dist_utils.init_distributed(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    precision = resolve_precision(precision, device)

    # --- the run folder (rank 0 decides, everyone learns the path) --------------------------
    if resume is not None:
        run_path = Path(resume)
        if not RunDir(run_path, writable=False).last().is_file():
            raise GazeError(f"--resume {run_path}: no weights/last.safetensors to resume from")
    else:
        run_path = new_run_dir(project, spec.command, name) if info.is_main else None
        if info.enabled:
            holder = [str(run_path) if run_path else None]
            torch.distributed.broadcast_object_list(holder, src=0)
            run_path = Path(holder[0])
    run = RunDir(run_path, writable=info.is_main)
    run.write_settings(spec.settings_toml)

    model = spec.model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    scaler = grad_scaler(device, precision)

    # --- resume ----------------------------------------------------------------------------
    start_epoch, skip, step, best_value, running = 0, 0, 0, None, None
    if resume is not None:
        state_dict, meta, state = load_checkpoint(run.last(), map_location="cpu")
        if state is None:
            raise GazeError(f"{run.last()}: holds no training state (cannot resume)")
        load_weights_into(model, state_dict, run.last().name)
        try:
            spec.optimizer.load_state_dict(state["optimizer"])
            if spec.scheduler is not None and state.get("scheduler") is not None:
                spec.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            start_epoch, skip, step = meta["epoch_next"], meta["skip"], meta["step"]
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise GazeError(f"{run.last()}: its training state does not fit this run ({e.__class__.__name__}: "
                            f"{' '.join(str(e).split())[:160]}); start a new run instead of --resume") from None
        running = state.get("running") if skip else None  # the interrupted epoch's loss sums so far
        best_value = meta.get("best_value")
        run.truncate_steps(step)
        reporter.message(f"resuming {run.path} at epoch {start_epoch + 1}, step {step}")
    else:
        seed_everything(seed)

    train_model: nn.Module = model
    if info.enabled:
        kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        train_model = nn.parallel.DistributedDataParallel(model, **kwargs)

    loader = torch.utils.data.DataLoader(
        spec.dataset, batch_sampler=spec.batches, num_workers=workers, pin_memory=device.type == "cuda",
        worker_init_fn=_seed_worker if workers else None, persistent_workers=False)

    def checkpoint(epoch_next: int, skip_next: int, metrics: dict | None = None) -> None:
        if not info.is_main:
            return
        state = {"optimizer": spec.optimizer.state_dict(),
                 "scheduler": spec.scheduler.state_dict() if spec.scheduler is not None else None,
                 "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                 "rng": rng_state(),
                 # mid-epoch: the epoch's loss sums so far, so a resumed epoch reports the mean of all its steps
                 "running": {"sums": dict(sums), "n": n_logged} if skip_next else None}
        save_checkpoint(run.last(), model.state_dict(), _meta(spec, epoch_next, skip_next, step, best_value,
                                                              metrics, precision), state)

    reporter.run_started(run.path, spec.epochs, start_epoch)
    for callback in spec.callbacks:
        callback.on_train_start(run.path, start_epoch)
    last_plot = time.perf_counter()
    seen: dict[int, list[int]] = {}  # dataset indices this rank trained on, per epoch
    try:
        for epoch in range(start_epoch, spec.epochs):
            if hasattr(spec.dataset, "set_epoch"):
                spec.dataset.set_epoch(epoch)
            this_skip = skip if epoch == start_epoch else 0
            spec.batches.set_epoch(epoch, this_skip)
            n_steps = len(spec.batches)
            reporter.epoch_started(epoch, spec.epochs, n_steps, this_skip)
            train_model.train()
            sums: dict[str, float] = {}
            n_logged, n_images, t0 = 0, 0, time.perf_counter()
            if this_skip and running:
                sums, n_logged = {str(k): float(v) for k, v in running["sums"].items()}, int(running["n"])
            step_rows: list[dict] = []
            seen.setdefault(epoch, [])
            for i, batch in enumerate(loader, start=this_skip + 1):
                if "index" in batch:
                    seen[epoch].extend(int(j) for j in batch["index"])
                step += 1
                batch = _to_device(batch, device, non_blocking=device.type == "cuda")
                gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
                ctx = StepContext(step=step, epoch=epoch, device=device, generator=gen)
                with autocast(device, precision):
                    loss, logs = spec.loss_fn(train_model, batch, ctx)
                if not torch.isfinite(loss).item():
                    raise TrainingDiverged(
                        f"epoch {epoch + 1}, step {step}: the loss is {loss.item()}; stopped. The last good "
                        f"checkpoint is {run.last() if run.last().is_file() else 'not written yet'} "
                        f"(lower --lr, or try --precision fp32)")
                spec.optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if spec.grad_clip > 0:
                    scaler.unscale_(spec.optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
                scaler.step(spec.optimizer)
                scaler.update()
                logs = {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}
                for callback in spec.callbacks:
                    callback.on_step_end(step, logs)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_logged += 1
                n_images += len(next(iter(batch.values())))
                step_rows.append({"step": step, "epoch": epoch + 1, **logs,
                                  "lr": spec.optimizer.param_groups[0]["lr"]})
                elapsed = time.perf_counter() - t0
                reporter.step(i, n_steps, {**logs, "img/s": n_images * info.world_size / max(elapsed, 1e-9)})
                if spec.checkpoint_every and step % spec.checkpoint_every == 0 and i < n_steps:
                    run.append_steps(step_rows)
                    step_rows = []
                    checkpoint(epoch, i)
            if spec.scheduler is not None:
                spec.scheduler.step()
            if info.enabled:  # BN running statistics drift apart per rank: take rank 0's everywhere
                for buffer in model.buffers():
                    torch.distributed.broadcast(buffer.data, src=0)
            elapsed = time.perf_counter() - t0
            row: dict = {"epoch": epoch + 1, "step": step}
            row.update({f"train_{k}": _mean_across_ranks(v / max(n_logged, 1), info) for k, v in sums.items()})
            row["lr"] = spec.optimizer.param_groups[0]["lr"]
            row["images_per_s"] = n_images * info.world_size / max(elapsed, 1e-9)
            metrics = None
            if spec.evaluate_fn is not None and ((epoch + 1) % spec.eval_every == 0 or epoch + 1 == spec.epochs):
                metrics = spec.evaluate_fn(model, spec.select_on)
                row.update({f"{spec.select_on}_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
                value = metrics.get(spec.select_metric)
                if _better(value, best_value, spec.select_mode):
                    best_value = value
                    if info.is_main:
                        save_checkpoint(run.best(), model.state_dict(),
                                        _meta(spec, epoch + 1, 0, step, best_value, metrics, precision))
            run.append_steps(step_rows)
            # the row first: a stop between the two leaves a row that the resumed epoch rewrites, where
            # the other order would lose the row of an epoch the checkpoint says is done
            run.append_epoch(row)
            checkpoint(epoch + 1, 0, metrics)
            if epoch + 1 == spec.epochs or time.perf_counter() - last_plot >= CURVES_EVERY_S:
                run.plot_curves()  # seconds of matplotlib: throttled, or short epochs would wait on it
                last_plot = time.perf_counter()
            reporter.epoch_finished(epoch, row)
            for callback in spec.callbacks:
                callback.on_epoch_end(epoch, row)
    except KeyboardInterrupt:
        if run.last().is_file():
            raise TrainingInterrupted(f"interrupted; continue from the last checkpoint with: gaze {spec.command} "
                                      f"--resume {run.path}") from None
        raise TrainingInterrupted(f"interrupted before the first checkpoint of {run.path} was written "
                                  f"(nothing to resume: start again)") from None
    finally:
        if info.enabled:
            dist_utils.barrier()
    if info.enabled:
        _write_ddp_check(run, info, seen, model)

    # --- the test split, once, with the best weights ----------------------------------------
    test_metrics = None
    best_path = run.best() if run.best().is_file() else None
    if spec.evaluate_fn is not None:
        if best_path is not None:
            state_dict, _, _ = load_checkpoint(best_path, map_location="cpu")
            model.load_state_dict(state_dict)
        test_metrics = spec.evaluate_fn(model, "test")
        if info.is_main and test_metrics is not None:
            write_json(run.test_metrics_json, {**test_metrics, "weights": str(best_path or run.last())})
    if info.enabled:
        dist_utils.barrier()
    return TrainResult(run_dir=run.path, best=best_path, last=run.last(), test_metrics=test_metrics,
                       best_metric=best_value, epochs_done=spec.epochs,
                       files=[p for p in (run.settings_file, run.metrics_csv, run.steps_csv, run.curves_png,
                                          run.last(), best_path, run.test_metrics_json) if p and p.exists()])


def _meta(spec: TrainSpec, epoch_next: int, skip: int, step: int, best_value, metrics, precision) -> dict:
    return {
        "gazecli_version": __version__,
        "command": spec.command,
        "model": spec.model_meta,
        "epoch_next": epoch_next,  # the epoch to continue with (0-based)
        "skip": skip,  # batches of that epoch already done
        "step": step,
        "best_value": best_value,
        "select": {"metric": spec.select_metric, "mode": spec.select_mode, "on": spec.select_on},
        "metrics": {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float, str))},
        "precision": precision,
        "settings": spec.settings.model_dump(mode="json") if hasattr(spec.settings, "model_dump") else {},
        **spec.extra_meta,
    }


def _mean_across_ranks(value: float, info) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        t = t.cuda()
    torch.distributed.all_reduce(t)
    return float(t.item()) / info.world_size


def weights_digest(module: nn.Module) -> str:
    """sha256 of every tensor of the state dict (names sorted): equal weights, equal digest."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _write_ddp_check(run: RunDir, info, seen: dict, model: nn.Module) -> None:
    """ddp_check.json: what each rank trained on and a digest of its final weights (they must
    be disjoint shards and identical weights)."""
    mine = {"rank": info.rank, "seen": {str(k): v for k, v in seen.items()}, "weights": weights_digest(model)}
    parts = [None] * info.world_size
    torch.distributed.all_gather_object(parts, mine)
    if info.is_main:
        write_json(run.ddp_check_json, {"world_size": info.world_size, "ranks": parts}, indent=None,
                   newline=False)


def _seed_worker(worker_id: int) -> None:
    from gazecli.core.data.dataset import seed_worker

    seed_worker(worker_id)
