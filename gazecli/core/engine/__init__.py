"""The shared engine: devices, precision, distributed runs, checkpoints, run folders, training."""
