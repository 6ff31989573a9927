"""The noise process and DDIM/SDEdit sampler (spec §3.2-§3.4): numbers, diffusers agreement, both modes."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
import torch

from gazecli.core.diffusion import HeatmapScheduler, refine_with_diffusion

S = 2.0  # the spec's scale


def spec_alphas_cumprod(T: int = 500) -> np.ndarray:
    """ᾱ from the spec's formula, independently of the code: linear betas 1e-4*1000/T .. 0.02*1000/T."""
    betas = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def gaussian_heatmaps(batch: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    maps = []
    for _ in range(batch):
        cx, cy = rng.uniform(3, size - 3, size=2)
        maps.append(np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 2.0**2)))
    return torch.tensor(np.stack(maps)[:, None], dtype=torch.float64)  # (B, 1, H, W), peak ~1


def diffusers_or_skip():
    return pytest.importorskip("diffusers", reason="diffusers is the reference for these checks")


# ---------------------------------------------------------------------------------------- schedule
def test_alpha_bar_values_of_the_spec():
    s = HeatmapScheduler()
    assert s.betas[0].item() == pytest.approx(2e-4) and s.betas[-1].item() == pytest.approx(0.04)
    # as printed in the spec: each value must round to the digits shown (half a unit in the last one)
    expected = {0: "0.9998", 49: "0.898", 99: "0.660", 124: "0.524", 199: "0.195", 200: "0.192",
                249: "0.0781", 250: "0.0765", 499: "3.8e-5"}
    for index, text in expected.items():
        half_unit = 0.5 * 10.0 ** Decimal(text).as_tuple().exponent
        assert abs(s.alphas_cumprod[index].item() - float(text)) <= half_unit, (index, text)
    # 1-based view used by training and the correct sampler
    assert s.alpha_bars[0].item() == 1.0 and s.alpha_bars[250].item() == s.alphas_cumprod[249].item()
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), spec_alphas_cumprod(), rtol=1e-12)


def test_add_noise_matches_diffusers_closed_form():
    diffusers = diffusers_or_skip()
    kw = dict(num_train_timesteps=500, beta_start=2e-4, beta_end=0.04, beta_schedule="linear")
    s = HeatmapScheduler()
    g = torch.Generator().manual_seed(0)
    x0 = s.to_scaled(torch.rand(4, 1, 8, 8, generator=g))
    noise = torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([1, 50, 250, 500])  # our 1-based t == diffusers' index t-1
    ours = s.add_noise(x0, noise, t)
    for ref in (diffusers.DDPMScheduler(**kw), diffusers.DDIMScheduler(**kw)):
        torch.testing.assert_close(ours, ref.add_noise(x0, noise, t - 1), rtol=1e-5, atol=1e-5)
    # the spec's clamp option, and t = 0 is the clean signal
    clamped = s.add_noise(x0, noise, t, clamp=True)
    torch.testing.assert_close(clamped, ours.clamp(-S, S))
    assert clamped.abs().max() <= S and ours.abs().max() > S
    torch.testing.assert_close(s.add_noise(x0, noise, 0), x0)


def test_training_inputs_are_the_official_q_sample():
    s = HeatmapScheduler()
    ac = spec_alphas_cumprod()
    g = torch.Generator().manual_seed(1)
    x0 = gaussian_heatmaps(2)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 500])
    x_t, t_embed = s.training_inputs(x0, t, noise)
    # spec §3.2: noise index t-1, scale, clamp, map back; the embedding gets the float t itself
    a = ac[t.numpy() - 1].reshape(-1, 1, 1, 1)
    expected = (np.clip(np.sqrt(a) * (2 * x0.numpy() - 1) * S + np.sqrt(1 - a) * noise.numpy(), -S, S) / S + 1) / 2
    np.testing.assert_allclose(x_t.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert t_embed.dtype == torch.float32 and t_embed.tolist() == [1.0, 500.0]
    assert x_t.min() >= 0 and x_t.max() <= 1
    # t = 1 is almost clean: the background stays near 0 and the peak near 1
    assert (x_t[0] - x0[0]).abs().max() < 0.05
    t_train = s.sample_training_timesteps(10_000, generator=torch.Generator().manual_seed(0))
    assert t_train.min() == 1 and t_train.max() == 500


def test_timesteps_both_modes():
    s, c = HeatmapScheduler(), HeatmapScheduler(compat=True)
    assert s.set_timesteps(10).tolist() == [500, 450, 400, 350, 300, 250, 200, 150, 100, 50]
    assert c.set_timesteps(10).tolist() == [499, 449, 399, 349, 299, 249, 199, 149, 99, 49]
    assert s.set_timesteps(2, start_step=250).tolist() == [250, 125]
    assert c.set_timesteps(2, start_step=250).tolist() == [249, 124]
    assert s.set_timesteps(2, start_step=200).tolist() == [200, 100]
    assert c.set_timesteps(2, start_step=200).tolist() == [199, 99]
    assert torch.equal(c.timesteps, torch.tensor([199, 99]))
    # non-divisible: correct mode still starts at the noise level; compat keeps the official grid
    assert s.set_timesteps(3, start_step=250).tolist() == [250, 167, 83]
    assert c.set_timesteps(3, start_step=250).tolist() == [249, 166, 83, 0]
    for bad in (dict(n_steps=0), dict(n_steps=2, start_step=0), dict(n_steps=2, start_step=501),
                dict(n_steps=300, start_step=250)):
        with pytest.raises(ValueError):
            s.set_timesteps(**bad)
    with pytest.raises(ValueError):  # compat noises at index start_step, which must exist
        c.set_timesteps(2, start_step=500)


# ---------------------------------------------------------------------------------------- DDIM step
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_matches_diffusers(eta):
    diffusers = diffusers_or_skip()
    ref = diffusers.DDIMScheduler(num_train_timesteps=500, beta_start=2e-4, beta_end=0.04, beta_schedule="linear",
                                  prediction_type="sample", clip_sample=False, set_alpha_to_one=True)
    ref.set_timesteps(10)  # [450, 400, ..., 0], prev = index - 50, alpha_prev = 1 below 0
    s = HeatmapScheduler()
    g = torch.Generator().manual_seed(2)
    for index in (450, 200, 0):
        x = 1.5 * torch.randn(2, 1, 8, 8, generator=g)
        x0_scaled = s.to_scaled(torch.rand(2, 1, 8, 8, generator=g))
        z = torch.randn(2, 1, 8, 8, generator=g)
        prev_index = index - 50
        ours = s.step(s.to_unit(x0_scaled), index + 1, max(prev_index, -1) + 1, x, eta=eta, noise=z)
        expected = ref.step(x0_scaled, index, x, eta=eta, variance_noise=z).prev_sample
        torch.testing.assert_close(ours.prev_sample, expected, rtol=1e-4, atol=1e-5)
        if index == 0:  # the final step lands on x0 exactly
            torch.testing.assert_close(ours.prev_sample, x0_scaled, rtol=1e-5, atol=1e-5)


def test_step_noise_comes_from_the_generator():
    s = HeatmapScheduler()
    x, x0 = torch.randn(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    a = s.step(x0, 300, 200, x, eta=1.0, generator=torch.Generator().manual_seed(5)).prev_sample
    z = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, s.step(x0, 300, 200, x, eta=1.0, noise=z).prev_sample)
    assert not torch.allclose(a, s.step(x0, 300, 200, x, eta=0.0).prev_sample)


# ---------------------------------------------------------------------------------------- oracle
class RecordingOracle:
    """A model that knows the true x0; records what it was fed."""

    def __init__(self, x0):
        self.x0, self.calls = x0, []

    def __call__(self, x_in, t):
        self.calls.append((x_in.clone(), t.clone()))
        return self.x0.clone()


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("start_step", [None, 250, 200])
def test_correct_sampler_with_an_oracle_returns_x0(eta, start_step):
    x0 = gaussian_heatmaps()
    oracle = RecordingOracle(x0)
    s = HeatmapScheduler()
    g = torch.Generator().manual_seed(3)
    n_steps = 10 if start_step is None else 2
    start = None if start_step is None else x0.flip(-1)  # any prior: the oracle knows better
    out = s.sample(oracle, x0.shape, n_steps, eta=eta, generator=g, start=start, start_step=start_step,
                   dtype=torch.float64)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-12)
    assert [int(t[0]) for _, t in oracle.calls] == s.set_timesteps(n_steps, start_step).tolist()


@pytest.mark.parametrize("start_step", [None, 250])
def test_correct_sampler_feeds_the_model_what_training_fed_it(start_step):
    """eta = 0 with an oracle keeps x_t = sqrt(ᾱ_t)x0' + sqrt(1-ᾱ_t)ε with one fixed ε, so every model
    input must equal `training_inputs(x0, t, ε)` for the fed t: same space, same timestep convention."""
    x0 = gaussian_heatmaps()
    s = HeatmapScheduler()
    oracle = RecordingOracle(x0)
    s.sample(oracle, x0.shape, 5, eta=0.0, generator=torch.Generator().manual_seed(4),
             start=None if start_step is None else x0, start_step=start_step, dtype=torch.float64)
    first = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    if start_step is None:  # x_T = first: the ε it implies for x0 at t = T
        a = s.alpha_bars[500].item()
        eps = (first - math.sqrt(a) * s.to_scaled(x0)) / math.sqrt(1 - a)
    else:
        eps = first
    for x_in, t in oracle.calls:
        expected_in, expected_t = s.training_inputs(x0, t.long(), eps)
        torch.testing.assert_close(x_in, expected_in, rtol=0, atol=1e-9)
        torch.testing.assert_close(t, expected_t)
    # the compat sampler does not: its inputs are normalised twice and sit in [0.5, 0.75]
    c_oracle = RecordingOracle(x0)
    HeatmapScheduler(compat=True).sample(c_oracle, x0.shape, 5, eta=0.0, generator=torch.Generator().manual_seed(4),
                                         start=None if start_step is None else x0, start_step=start_step,
                                         dtype=torch.float64)
    for x_in, _ in c_oracle.calls[1 if start_step is None else 0:]:
        assert x_in.min() >= 0.5 and x_in.max() <= 0.75


def test_compat_pure_noise_input_ranges_as_the_spec_measured():
    x0 = gaussian_heatmaps(4, 16)
    oracle = RecordingOracle(x0)
    HeatmapScheduler(compat=True).sample(oracle, x0.shape, 10, eta=1.0, generator=torch.Generator().manual_seed(0))
    first = oracle.calls[0][0]
    assert first.min() == 0.0 and first.max() == 1.0  # N(0,1) clamped to [-2,2] spans [0,1]
    for x_in, _ in oracle.calls[1:]:
        assert x_in.min() >= 0.5 and x_in.max() <= 0.75
    assert [int(t[0]) for _, t in oracle.calls] == list(range(499, 0, -50))


# ---------------------------------------------------------------------------------------- compat by hand
def _toy_model(x_in, t):
    """Deterministic and sensitive to both the input and the fed timestep."""
    return 0.2 + 0.5 * x_in + t.to(x_in.dtype).view(-1, 1, 1, 1) / 1000.0


@pytest.mark.parametrize("case", ["sdedit_250_2_eta1", "noise_2_eta0"])
def test_compat_sampler_matches_the_spec_listing_by_hand(case):
    ac = spec_alphas_cumprod()
    shape = (1, 1, 1, 4)
    prior = [0.0, 0.25, 0.9, 1.0]
    seed = 11
    clip = lambda v: min(max(v, -S), S)  # noqa: E731

    # the noise, drawn in the sampler's documented order: initial noise, then one z per step (eta > 0)
    g = torch.Generator().manual_seed(seed)
    first = torch.randn(shape, generator=g, dtype=torch.float64).flatten().tolist()
    if case == "sdedit_250_2_eta1":
        eta, taus, start_step = 1.0, [249, 124], 250
        zs = [torch.randn(shape, generator=g, dtype=torch.float64).flatten().tolist() for _ in taus]
        # q_sample at index start_step = 250 (not 249), clamp, map to [0,1]
        state = [(clip(math.sqrt(ac[250]) * (2 * p - 1) * S + math.sqrt(1 - ac[250]) * e) / S + 1) / 2
                 for p, e in zip(prior, first)]
    else:
        eta, taus, start_step = 0.0, [499, 249], None
        zs = [[0.0] * 4, [0.0] * 4]
        state = list(first)  # x_T ~ N(0,1), used as is

    a_prevs = [ac[taus[1]], ac[0]]  # the last step's a_prev is ᾱ_0 = 0.9998, not 1
    fed_inputs = []
    for tau, a_prev, z in zip(taus, a_prevs, zs):
        a_t = ac[tau]
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        new_state, x0_hats = [], []
        for x, zi in zip(state, z):
            x_in = (clip(x) / S + 1) / 2  # model input
            fed_inputs.append(x_in)
            x0_hat = 0.2 + 0.5 * x_in + tau / 1000.0  # UNet(x_in, τ): τ itself is fed
            x_sc = (2 * x_in - 1) * S
            x0_hat_sc = (2 * x0_hat - 1) * S
            e_hat = (x_sc / math.sqrt(a_t) - x0_hat) / math.sqrt(1 / a_t - 1)  # unscaled x0_hat
            x_prev = math.sqrt(a_prev) * x0_hat_sc + math.sqrt(1 - a_prev - sigma**2) * e_hat + sigma * zi
            new_state.append((clip(x_prev) / S + 1) / 2)  # stored back in [0,1]
            x0_hats.append(x0_hat)
        state = new_state
    expected = x0_hats  # the output is x0_hat of the last step

    calls = []

    def model(x_in, t):
        calls.append((x_in.clone(), t.clone()))
        return _toy_model(x_in, t)

    c = HeatmapScheduler(compat=True)
    if start_step is None:
        out = c.sample(model, shape, 2, eta=eta, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    else:
        out = refine_with_diffusion(model, torch.tensor(prior, dtype=torch.float64).view(shape), start_step, 2,
                                    eta=eta, generator=torch.Generator().manual_seed(seed), compat=True)
    np.testing.assert_allclose(out.flatten().numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(torch.cat([x.flatten() for x, _ in calls]).numpy(), fed_inputs, rtol=0, atol=1e-12)
    assert [int(t[0]) for _, t in calls] == taus
    # ... and the correct sampler gives something else on the same problem
    s = HeatmapScheduler()
    if start_step is None:
        other = s.sample(_toy_model, shape, 2, eta=eta, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    else:
        other = refine_with_diffusion(_toy_model, torch.tensor(prior, dtype=torch.float64).view(shape), start_step, 2,
                                      eta=eta, generator=torch.Generator().manual_seed(seed))
    assert (other.flatten() - out.flatten()).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------- API
def test_refine_with_diffusion_is_seeded_sdedit():
    x0 = gaussian_heatmaps(2).float()
    prior = x0.roll(3, dims=-1)
    model = lambda x, t: 0.5 * x + 0.1  # noqa: E731
    a = refine_with_diffusion(model, prior, 250, 2, generator=torch.Generator().manual_seed(0))
    b = refine_with_diffusion(model, prior, 250, 2, generator=torch.Generator().manual_seed(0))
    c = refine_with_diffusion(model, prior, 250, 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.shape == prior.shape and a.dtype == prior.dtype
    same = HeatmapScheduler().sample(model, prior.shape, 2, eta=1.0, generator=torch.Generator().manual_seed(0),
                                     start=prior, start_step=250)
    assert torch.equal(a, same)
    # a caller's scheduler keeps its schedule, the mode comes from `compat`
    custom = HeatmapScheduler(num_train_timesteps=100)
    d = refine_with_diffusion(model, prior, 50, 2, generator=torch.Generator().manual_seed(0), compat=True,
                              scheduler=custom)
    assert custom.compat is False and d.shape == prior.shape
    with pytest.raises(ValueError):
        refine_with_diffusion(model, prior, 0, 2)
    with pytest.raises(ValueError):
        HeatmapScheduler().sample(model, prior.shape, 2, start_step=250)  # SDEdit needs a start


def test_last_step_alpha_prev_is_one_or_alpha_bar_0():
    """Correct: the last step lands on x0 (a_prev = 1). Compat: a_prev = ᾱ_0 = 0.9998 (invisible in the
    sampler's output, which is x0_hat, but it is the official state update)."""
    ac = spec_alphas_cumprod()
    x_unit = torch.tensor([[[[0.3, 0.6]]]], dtype=torch.float64)  # a compat state in [0,1]
    x0_hat = torch.tensor([[[[0.1, 0.8]]]], dtype=torch.float64)
    out = HeatmapScheduler(compat=True).step(x0_hat, 49, 0, x_unit, eta=0.0).prev_sample
    a_t, a_prev = ac[49], ac[0]
    expected = []
    for x, xh in zip([0.3, 0.6], [0.1, 0.8]):
        e_hat = (x / math.sqrt(a_t) - xh) / math.sqrt(1 / a_t - 1)
        x_prev = math.sqrt(a_prev) * (2 * xh - 1) * S + math.sqrt(1 - a_prev) * e_hat
        expected.append((min(max(x_prev, -S), S) / S + 1) / 2)
    np.testing.assert_allclose(out.flatten().numpy(), expected, rtol=0, atol=1e-12)
    correct = HeatmapScheduler().step(x0_hat, 50, 0, torch.randn(1, 1, 1, 2, dtype=torch.float64), eta=1.0)
    torch.testing.assert_close(correct.prev_sample, (2 * x0_hat - 1) * S, rtol=0, atol=1e-12)
