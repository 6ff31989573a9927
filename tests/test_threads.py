"""The thread policy: --threads, the default from CPU affinity minus DataLoader workers, and
passive OpenMP waiting set before torch loads (docs/threads.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gazecli.core.engine import threads
from tests.helpers import run_cli


def test_thread_count_from_affinity_workers_and_work(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 2, 5, 7}, raising=False)
    assert threads.available_cores() == 4
    assert threads.thread_count() == 4
    assert threads.thread_count(workers=3) == 1 and threads.thread_count(workers=9) == 1
    assert threads.thread_count(max_useful=2) == 2
    assert threads.thread_count(requested=6, workers=3) == 6  # --threads wins


def _fresh_python(code: str, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                              "GAZE_THREADS")}
    clean.update(PYTHONPATH=os.pathsep.join(sys.path), **env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_policy_before_torch_loads_sets_threads_and_passive_waiting():
    code = ("import json, os\n"
            "from gazecli.core.engine.threads import apply_thread_policy, available_cores\n"
            "p = apply_thread_policy(0, workers=1)\n"
            "import torch\n"
            "print(json.dumps({'torch': torch.get_num_threads(), 'cores': available_cores(), 'policy': p.threads,"
            " 'wait': os.environ.get('OMP_WAIT_POLICY'), 'applied': p.passive_applied}))")
    got = _fresh_python(code)
    assert got["policy"] == max(1, got["cores"] - 1) == got["torch"]
    assert got["wait"] == "PASSIVE" and got["applied"]
    # a user's own OMP_WAIT_POLICY is kept
    assert _fresh_python(code, OMP_WAIT_POLICY="ACTIVE")["wait"] == "ACTIVE"


def test_policy_after_torch_loaded_sets_the_count_and_says_passive_was_too_late():
    code = ("import json, torch\n"
            "from gazecli.core.engine.threads import apply_thread_policy\n"
            "p = apply_thread_policy(3)\n"
            "print(json.dumps({'torch': torch.get_num_threads(), 'applied': p.passive_applied, 'wait': p.wait_policy}))")
    assert _fresh_python(code) == {"torch": 3, "applied": False, "wait": ""}


def test_every_command_takes_threads():
    from gazecli.cli import COMMANDS

    for name in COMMANDS:
        code, out, _ = run_cli(name, "--help") if name not in ("data",) else run_cli(name, "synth", "--help")
        assert code == 0 and "--threads" in out, name
