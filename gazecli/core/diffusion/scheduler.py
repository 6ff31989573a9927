"""The noise process of the diffusion annotation prior (docs/design.md, "Diffusion prior"): schedule, DDIM, SDEdit.

A scheduler in the diffusers sense: `HeatmapScheduler` owns the betas, the scale-s input mapping,
`add_noise`, `training_inputs`, `set_timesteps` and the DDIM `step`; the network only maps
(x_t in [0,1], t, condition) to a predicted clean heatmap x0 in [0,1] (x0-prediction). `sample` and
`refine_with_diffusion` are the few lines that join the two.

Spaces. A heatmap x0 lives in the *unit* space [0,1]. The diffusion runs in the *scaled* space:
x0' = (2*x0 - 1)*s (s = 2, so [-2, 2]); the network always sees a unit-space input
(clamp(x', -s, s)/s + 1)/2.

Timesteps. t in {1..T} counts noising steps, as in the official trainer: a training sample at t is
noised with alphas_cumprod[t-1] (0-based array) and the time embedding receives t itself (the raw
integer, no rescaling). alpha_bars[t] = alphas_cumprod[t-1], with alpha_bars[0] = 1 (clean).

Two sampler modes (`compat`):

* correct (default): the state is kept in the scaled space, the model input is mapped to [0,1]
  once, ê = (x - sqrt(a_t)*x0_hat') / sqrt(1 - a_t) uses the scaled x0_hat', the time embedding gets
  the same t that training used for that noise level, SDEdit noises the prior to exactly the level
  of the first step, and the last step goes to t = 0 (a_prev = 1). Timesteps: {c, 2c, ..., total},
  e.g. 500, 450, ..., 50 for 10 steps; 250, 125 for SDEdit 250/2.
* compat: the official sampler (docs/compat.md), bit for bit in its formulas: 0-based timesteps
  τ ∈ {c-1, 2c-1, ..., total-1} (as the official code builds them: range(total, 0, -c) minus one)
  that index alphas_cumprod directly *and* are fed to the time embedding (training fed τ+1 for that
  noise level); the state is stored in [0,1] and normalised again at every step (double
  normalisation: model inputs in [0.5, 0.75]); ê uses the unscaled x0_hat; SDEdit noises the prior
  with alphas_cumprod[start_step] but sampling starts at τ = start_step-1; the last step uses
  a_prev = alphas_cumprod[0] instead of 1; the output is x0_hat of the last step.

Noise comes from an optional `torch.Generator`, drawn on the generator's device and moved to the
data's device, in this order: the initial noise (pure noise x_T, or ε of the SDEdit noising), then
one z per DDIM step when eta > 0. The same seed gives the same samples.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional, Sequence

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""model_fn(x_t_unit (B,1,H,W) in [0,1], t (B,) float) -> predicted x0 (B,1,H,W) in [0,1] space."""


class StepOutput(NamedTuple):
    prev_sample: torch.Tensor  # the next state (scaled space; unit space in compat mode)
    pred_x0: torch.Tensor  # the model's x0 prediction, unit space


def _randn(shape: Sequence[int], generator: Optional[torch.Generator], device, dtype) -> torch.Tensor:
    """Standard normal noise; with a generator it is drawn on the generator's device (reproducible
    across data devices when the generator is on the CPU) and then moved."""
    if generator is None:
        return torch.randn(tuple(shape), device=device, dtype=dtype)
    draw_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    noise = torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=draw_dtype)
    return noise.to(device=device, dtype=dtype)


@dataclasses.dataclass
class HeatmapScheduler:
    """DDPM noise schedule + DDIM sampler for x0-predicting heatmap denoisers (docs/design.md, "Diffusion prior").

    num_train_timesteps: T (500 in the paper).
    beta_start, beta_end: the linear schedule's ends *for T = 1000*; they are multiplied by 1000/T,
        as guided-diffusion does (T = 500 gives 2e-4 ... 0.04).
    scale: s of the input mapping x0' = (2*x0 - 1)*s.
    clamp: clamp x_t' to [-s, s] before it is mapped back to [0,1] for the network (docs/design.md,
        step 3). Used in training inputs and for the model input at sampling.
    compat: reproduce the official sampler's quirks (see the module docstring); training inputs are
        the same in both modes (they already match the official trainer).
    """

    num_train_timesteps: int = 500
    beta_start: float = 1e-4
    beta_end: float = 0.02
    scale: float = 2.0
    clamp: bool = True
    compat: bool = False

    def __post_init__(self) -> None:
        T = int(self.num_train_timesteps)
        if T < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {T}")
        factor = 1000.0 / T
        # float64 like the official code; cast to the data dtype where used
        self.betas = torch.linspace(self.beta_start * factor, self.beta_end * factor, T, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # (T,), 0-based like diffusers
        self.alpha_bars = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])  # (T+1,), [t]
        self.timesteps: Optional[torch.Tensor] = None

    def replace(self, **changes) -> "HeatmapScheduler":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_config(cls, config: dict, compat: bool = False) -> "HeatmapScheduler":
        """The scheduler of a stored config (a model config's "scheduler" part, or the whole config);
        the sampler mode is the caller's, never stored."""
        config = config.get("scheduler", config)
        known = {f.name for f in dataclasses.fields(cls)} - {"compat"}
        return cls(**{k: v for k, v in config.items() if k in known}, compat=compat)

    def to_config(self) -> dict:
        """What a checkpoint stores of the noise process (everything but the sampler mode)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "compat"}

    # ------------------------------------------------------------------ spaces
    def to_scaled(self, x_unit: torch.Tensor) -> torch.Tensor:
        """[0,1] -> [-s, s]."""
        return (2.0 * x_unit - 1.0) * self.scale

    def to_unit(self, x_scaled: torch.Tensor) -> torch.Tensor:
        """[-s, s] -> [0,1] (no clamping)."""
        return (x_scaled / self.scale + 1.0) / 2.0

    def _clamp(self, x_scaled: torch.Tensor) -> torch.Tensor:
        return x_scaled.clamp(-self.scale, self.scale) if self.clamp else x_scaled

    # ------------------------------------------------------------------ forward process
    def _coef(self, table: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
        """table[t] shaped to broadcast over `like` (t: int, 0-d or (B,) tensor)."""
        t = torch.as_tensor(t, dtype=torch.long)
        values = table[t.cpu()].to(device=like.device, dtype=like.dtype)
        if values.ndim == 0:
            return values
        return values.reshape(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, x0_scaled: torch.Tensor, noise: torch.Tensor, t, clamp: bool = False) -> torch.Tensor:
        """q(x_t | x0) in the scaled space: sqrt(ᾱ_t)*x0' + sqrt(1-ᾱ_t)*noise, t in {0..T} (1-based;
        t = 0 returns x0'). The same as diffusers' `add_noise(x0', noise, t-1)`. With `clamp`, the
        result is clamped to [-s, s] (docs/design.md, "Diffusion prior")."""
        a = self._coef(self.alpha_bars, t, x0_scaled)
        x = a.sqrt() * x0_scaled + (1.0 - a).sqrt() * noise
        return x.clamp(-self.scale, self.scale) if clamp else x

    def sample_training_timesteps(self, batch_size: int, generator: Optional[torch.Generator] = None,
                                  device=None) -> torch.Tensor:
        """t ~ U{1..T}, (B,) long."""
        gen_device = generator.device if generator is not None else "cpu"
        t = torch.randint(1, self.num_train_timesteps + 1, (batch_size,), generator=generator, device=gen_device)
        return t.to(device) if device is not None else t

    def training_inputs(self, x0: torch.Tensor, t, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the denoiser is fed in training (docs/design.md, "Diffusion prior"), for x0 in [0,1] and t in {1..T}:
        x_t = (clamp(sqrt(ᾱ_t)*x0' + sqrt(1-ᾱ_t)*noise, -s, s)/s + 1)/2 in [0,1] (noise index t-1 of
        the 0-based table), and the timestep the time embedding receives: float t, (B,).
        Identical in both modes (the official trainer already feeds t for index t-1)."""
        x_t = self.to_unit(self.add_noise(self.to_scaled(x0), noise, t, clamp=self.clamp))
        t_embed = torch.as_tensor(t, device=x0.device).to(torch.float32)
        if t_embed.ndim == 0:
            t_embed = t_embed.expand(x0.shape[0])
        return x_t, t_embed

    # ------------------------------------------------------------------ sampling
    def set_timesteps(self, n_steps: int, start_step: Optional[int] = None) -> torch.Tensor:
        """The sampling timesteps, descending, as fed to the time embedding; stored in `self.timesteps`.

        total = start_step (SDEdit) or T. Correct mode: t_k = round(k*total/n) for k = n..1
        ({c, 2c, ..., total} when n divides total); the step after the last goes to t = 0.
        Compat: the official 0-based τ = range(total, 0, -c) - 1 with c = total // n
        ({c-1, ..., total-1}; one more step when n does not divide total).
        """
        T = self.num_train_timesteps
        total = T if start_step is None else int(start_step)
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        if self.compat:
            upper = T - 1 if start_step is not None else T  # the SDEdit noise index must exist
            if not 1 <= total <= upper:
                raise ValueError(f"start_step must be in 1..{upper} in compat mode, got {total}")
            if n_steps > total:
                raise ValueError(f"n_steps ({n_steps}) exceeds the {total} available timesteps")
            c = total // n_steps
            steps = [v - 1 for v in range(total, 0, -c)]
        else:
            if not 1 <= total <= T:
                raise ValueError(f"start_step must be in 1..{T}, got {total}")
            if n_steps > total:
                raise ValueError(f"n_steps ({n_steps}) exceeds the {total} available timesteps")
            steps = [int(round(k * total / n_steps)) for k in range(n_steps, 0, -1)]
        self.timesteps = torch.tensor(steps, dtype=torch.long)
        return self.timesteps

    def _sampling_alpha_bar(self, t: int) -> float:
        """ᾱ used by the sampler at timestep t: alpha_bars[t] (t=0 -> 1); compat: alphas_cumprod[τ]."""
        t = int(t)
        if self.compat:
            return float(self.alphas_cumprod[t])
        return float(self.alpha_bars[t])

    def model_input(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_in in [0,1], t as a (B,) float tensor) fed to the denoiser for state x at timestep t.
        x_in = (clamp(x, -s, s)/s + 1)/2 in both modes; in compat mode the state x is itself already
        in [0,1] after the first step, hence the double normalisation."""
        x_in = self.to_unit(self._clamp(x))
        t_in = torch.full((x.shape[0],), float(int(t)), device=x.device, dtype=torch.float32)
        return x_in, t_in

    def step(self, model_x0: torch.Tensor, t, t_prev, x: torch.Tensor, eta: float = 0.0,
             generator: Optional[torch.Generator] = None, noise: Optional[torch.Tensor] = None) -> StepOutput:
        """One DDIM step from timestep t to t_prev (the timesteps of `set_timesteps`; t_prev = 0 after the
        last one), given the model's x0 prediction in [0,1] and the current state x.

        σ = eta*sqrt((1-a_prev)/(1-a_t) * (1 - a_t/a_prev)); z ~ N(0, I) from `generator` unless `noise`
        is given (z is only drawn when eta > 0).

        Correct mode (x in [-s, s]; a_t = alpha_bars[t], a_prev = alpha_bars[t_prev], so 1 at t_prev=0):
            x0' = (2*x0_hat - 1)*s;  ê = (x - sqrt(a_t)*x0') / sqrt(1 - a_t)
            x_prev = sqrt(a_prev)*x0' + sqrt(1 - a_prev - σ²)*ê + σ*z          (scaled space)
          This is diffusers' DDIMScheduler.step(prediction_type="sample") at index t-1 -> t_prev-1.
        Compat (docs/compat.md; a_t = alphas_cumprod[t], a_prev = alphas_cumprod[t_prev], so ᾱ_0 at the end):
            x_sc = clamp(x, -s, s);  ê = (x_sc/sqrt(a_t) - x0_hat) / sqrt(1/a_t - 1)   (unscaled x0_hat)
            x_prev = sqrt(a_prev)*x0' + sqrt(1 - a_prev - σ²)*ê + σ*z
            x_prev = (clamp(x_prev, -s, s)/s + 1)/2                             (stored in [0,1])
        """
        t, t_prev = int(t), int(t_prev)
        if not self.compat and t < 1:
            raise ValueError(f"cannot step from t={t}: t=0 is the clean heatmap")
        a_t = self._sampling_alpha_bar(t)
        a_prev = self._sampling_alpha_bar(t_prev)
        sigma = eta * ((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)) ** 0.5 if eta > 0 else 0.0
        x0_scaled = self.to_scaled(model_x0)
        if self.compat:
            x_sc = self._clamp(x)
            eps = (x_sc / a_t**0.5 - model_x0) / (1.0 / a_t - 1.0) ** 0.5
        else:
            eps = (x - a_t**0.5 * x0_scaled) / (1.0 - a_t) ** 0.5
        direction = max(1.0 - a_prev - sigma**2, 0.0) ** 0.5
        x_prev = a_prev**0.5 * x0_scaled + direction * eps
        if eta > 0:
            if noise is None:
                noise = _randn(x.shape, generator, x.device, x.dtype)
            x_prev = x_prev + sigma * noise
        if self.compat:
            x_prev = self.to_unit(self._clamp(x_prev))
        return StepOutput(x_prev, model_x0)

    def initial_state(self, shape: Sequence[int], generator: Optional[torch.Generator] = None,
                      start: Optional[torch.Tensor] = None, start_step: Optional[int] = None,
                      device=None, dtype=None, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The sampler's starting state: x_T ~ N(0, I) (scaled space; `noise` when given), or, with a prior heatmap `start`
        in [0,1], the prior noised to `start_step` (SDEdit). Correct mode: add_noise(start', ε,
        start_step) without clamping (the state stays unclamped; the model input is clamped).
        Compat: the official q_sample at index start_step (= t start_step+1), clamped and mapped to
        [0,1]."""
        if start is None:
            if start_step is not None:
                raise ValueError("start_step needs a start heatmap (SDEdit); pass start=...")
            dtype = dtype or torch.float32
            return _randn(shape, generator, device, dtype) if noise is None else noise
        if start_step is None:
            raise ValueError("a start heatmap needs start_step")
        eps = _randn(start.shape, generator, start.device, start.dtype) if noise is None else noise
        x0_scaled = self.to_scaled(start)
        if self.compat:
            return self.to_unit(self.add_noise(x0_scaled, eps, int(start_step) + 1, clamp=self.clamp))
        return self.add_noise(x0_scaled, eps, int(start_step))

    def sample(self, model_fn: ModelFn, shape: Sequence[int], n_steps: int, eta: float = 1.0,
               generator: Optional[torch.Generator] = None, start: Optional[torch.Tensor] = None,
               start_step: Optional[int] = None, device=None, dtype=None,
               noise_fn: Optional[Callable[[], torch.Tensor]] = None) -> torch.Tensor:
        """DDIM sampling with an x0-predicting `model_fn(x_in, t) -> x0_hat` (both in [0,1]).

        From pure noise (start=None) over n_steps of the whole chain, or SDEdit: from the prior
        heatmaps `start` (B,1,H,W) in [0,1] noised to `start_step`, then n_steps DDIM steps.
        eta = 1 (the official default) is stochastic, eta = 0 deterministic. Returns the x0
        prediction of the last step, (B,1,H,W) in [0,1] space (not clamped): in correct mode this
        equals the state after the final step to t = 0, in compat mode it is what the official
        sampler returns.

        `noise_fn()`, when given, supplies every draw instead of `generator`, in the same order (the
        initial noise, then one z per step when eta > 0), already on the data's device and dtype.
        """
        if start is not None:
            shape = tuple(start.shape)
            device, dtype = start.device, start.dtype
        timesteps = self.set_timesteps(n_steps, start_step).tolist()
        x = self.initial_state(shape, generator, start, start_step, device=device, dtype=dtype,
                               noise=None if noise_fn is None else noise_fn())
        pred_x0 = x
        for i, t in enumerate(timesteps):
            t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else 0
            x_in, t_in = self.model_input(x, t)
            x0_hat = model_fn(x_in, t_in).to(x.dtype)  # (an autocast model may return bf16/fp16)
            z = noise_fn() if noise_fn is not None and eta > 0 else None
            x, pred_x0 = self.step(x0_hat, t, t_prev, x, eta=eta, generator=generator, noise=z)
        return pred_x0


def refine_with_diffusion(denoise_fn: ModelFn, prior_heatmaps: torch.Tensor, start_step: int, n_steps: int,
                          eta: float = 1.0, generator: Optional[torch.Generator] = None, compat: bool = False,
                          scheduler: Optional[HeatmapScheduler] = None) -> torch.Tensor:
    """The paper's SDEdit refinement of pseudo-label heatmaps: noise the priors (B,1,H,W) in [0,1]
    to `start_step` (250, or 200 at 5 % labels) and denoise them with `n_steps` DDIM steps (2).

    `denoise_fn(x_in, t)` returns the predicted x0 in [0,1] with the condition already bound, e.g.
    `lambda x, t: model.denoise(x, t, cond)` with `cond = model.condition(scene, head, face)`.
    `compat=True` reproduces the official sampler (module docstring); `scheduler` defaults to the
    paper's schedule (T=500, linear, s=2). Returns (B,1,H,W) refined heatmaps (x0 space, not
    normalised).
    """
    scheduler = (scheduler or HeatmapScheduler()).replace(compat=compat)
    return scheduler.sample(denoise_fn, prior_heatmaps.shape, n_steps, eta=eta, generator=generator,
                            start=prior_heatmaps, start_step=start_step)
