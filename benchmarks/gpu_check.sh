#!/usr/bin/env bash
# One check of the CUDA paths on a GPU machine, at the paper's sizes, in at most 8 minutes:
# AMP (bf16 / fp16) train steps of the VAT student and the diffusion prior, a 1-process NCCL DDP
# step, predict latency per person, Grad-CAM throughput with a BLIP-base-sized random model, and
# the official-like denoiser beside ours (train-step ratio, goal >= 1.5x). See gpu_check.py.
#
#   bash benchmarks/gpu_check.sh                 # on a GPU machine (figures also in $OUT/gpu_check.json)
#   bash benchmarks/gpu_check.sh --cpu-smoke     # tiny sizes on the CPU: checks the script itself
#   bash benchmarks/gpu_check.sh --only ddp,diffusion-step
#
# On a machine without CUDA it prints one line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
case " $* " in
  *" --cpu-smoke "*) ;;
  *) if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
       echo "gpu_check: no CUDA device on this machine; nothing to check (--cpu-smoke runs tiny sizes on the CPU)"
       exit 0
     fi ;;
esac
# 480 s in all; the Python side skips what is left after its own 450 s budget
timeout --signal=INT --kill-after=10 480 python benchmarks/gpu_check.py "$@"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ]; then
  echo "gpu_check: stopped at the 8-minute limit"
fi
exit "$rc"
