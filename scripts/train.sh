#!/usr/bin/env bash
# Quickstart: set up, then train the default experiment end to end on the CPU (or any
# accelerator JAX finds). Extra arguments go to `mtl-jax train`, e.g. --set aggregator=sum
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mtl-jax train --config experiments/dante_pos_emotions_pcgrad.py "$@"
