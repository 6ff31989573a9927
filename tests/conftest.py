"""Shared test setup."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Every model in the tests is tiny: one intra-op thread is faster, and far faster on a CPU that
    other jobs share (OpenMP threads spin on every small op while one of them waits for a core)."""
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ.setdefault("GAZE_THREADS", "1")  # the commands' thread policy (run in-process by run_cli) agrees
    yield
    torch.set_num_threads(before)
