"""The CPU thread policy every command applies before it starts work (docs/threads.md).

- threads: `--threads N`, or by default the cores this process may run on (its CPU affinity,
  not the machine's count, so a container's or `taskset`'s limit is respected), minus one per
  DataLoader worker process (each worker runs one torch thread), at least 1, and never more
  than the work can use (`max_useful`, e.g. the persons of a small batch).
- passive waiting: `OMP_WAIT_POLICY=PASSIVE` unless the user set it. OpenMP threads that finish
  a parallel region then sleep instead of spinning; on a machine other processes also use,
  spinning threads steal the cores the busy ones need. OpenMP reads the variable once, when the
  library loads with torch, so it only takes effect if torch is not imported yet (the `gaze`
  command imports torch only after its options are parsed); `apply_thread_policy` reports
  whether it did.

No torch import here: the command line applies the policy before torch is loaded.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

PASSIVE = "PASSIVE"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def thread_count(requested: int = 0, workers: int = 0, max_useful: int | None = None) -> int:
    """`requested` when given (> 0), else the available cores minus the DataLoader workers,
    capped by `max_useful`; at least 1."""
    if requested and requested > 0:
        return int(requested)
    n = available_cores() - max(0, int(workers))
    if max_useful is not None:
        n = min(n, int(max_useful))
    return max(1, n)


@dataclass(frozen=True)
class ThreadPolicy:
    threads: int
    wait_policy: str  # OMP_WAIT_POLICY as set ("" : OpenMP's default, spinning a while before sleeping)
    passive_applied: bool  # this call set OMP_WAIT_POLICY before torch was loaded


def apply_thread_policy(requested: int = 0, workers: int = 0, max_useful: int | None = None) -> ThreadPolicy:
    """Set the thread count (and, before torch is loaded, passive OpenMP waiting) for this process."""
    n = thread_count(requested, workers, max_useful)
    torch_loaded = "torch" in sys.modules
    passive_applied = False
    if not torch_loaded:
        if "OMP_WAIT_POLICY" not in os.environ:
            os.environ["OMP_WAIT_POLICY"] = PASSIVE
            passive_applied = True
        os.environ["OMP_NUM_THREADS"] = str(n)  # read by torch's thread pools when it loads
        os.environ["MKL_NUM_THREADS"] = str(n)
    else:
        import torch

        torch.set_num_threads(n)
    if "cv2" in sys.modules:  # OpenCV's own pool (image decoding and resizing in the data pipeline)
        sys.modules["cv2"].setNumThreads(n)
    return ThreadPolicy(n, os.environ.get("OMP_WAIT_POLICY", "").upper(), passive_applied)
