#!/usr/bin/env bash
# One prepared accelerator run for issue 11 (under 8 minutes on an H200), its JSON lines into
# benchmarks/results/ (or $OUT_DIR) named after the device:
#   1. step_time.py for T = 2, 4, 8 with memory (temp_bytes, peak_bytes): EW, the Jacobian
#      baselines, PCGrad / UPGrad / MGDA full (engine and materialised) and representation;
#   2. peers.py with whatever torch is installed (its CUDA build if present; else mtl_jax only);
#   3. an EW and a PCGrad Transformer step in bfloat16 with model FLOPs utilisation
#      (XLA's flop count of the compiled step / step time / the chip's peak, PEAK_TFLOPS).
#
#   bash benchmarks/gpu.sh            # the real run
#   TINY=1 bash benchmarks/gpu.sh     # seconds, on CPU too: checks the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
[ -x .venv/bin/python ] && PY=${PY_OVERRIDE:-.venv/bin/python}
export PYTHONPATH="${PWD}/src:${PWD}:${PYTHONPATH:-}"
OUT_DIR=${OUT_DIR:-benchmarks/results}
mkdir -p "$OUT_DIR"
DEVICE=$($PY -c "import jax; d = jax.devices()[0]; print((d.device_kind if d.platform != 'cpu' else 'cpu').lower().replace(' ', '_'))")
SUFFIX=${DEVICE}
if [ -n "${TINY:-}" ]; then
  SUFFIX="${DEVICE}_tiny"
  STEP_ARGS=(--tasks 2 --batch 32 --rounds 2 --steps-per-round 2)
  PEER_ARGS=(--tiny --tasks 2 --rounds 1 --steps-per-round 1)
  TRANSFORMER="batch=4 length=16 width=32 layers=1 heads=2 rounds=2 steps=2"
else
  STEP_ARGS=(--tasks 2 4 8 --batch 256 --rounds 10 --steps-per-round 10)
  PEER_ARGS=(--tasks 2 4 8 --rounds 8 --steps-per-round 5)
  TRANSFORMER="batch=64 length=512 width=1024 layers=8 heads=16 rounds=10 steps=10"
fi
echo "device: ${DEVICE}; results: ${OUT_DIR}/*_${SUFFIX}.jsonl" >&2

timeout 200 $PY benchmarks/step_time.py "${STEP_ARGS[@]}" \
  --cases pcgrad:full pcgrad:full:materialised upgrad:full mgda:full pcgrad:representation \
  --out "${OUT_DIR}/step_time_${SUFFIX}.jsonl" || echo "step_time: failed or timed out" >&2

timeout 150 $PY benchmarks/peers.py "${PEER_ARGS[@]}" --out "${OUT_DIR}/peers_${SUFFIX}.jsonl" \
  || echo "peers: failed or timed out" >&2

timeout 120 env $TRANSFORMER OUT="${OUT_DIR}/transformer_mfu_${SUFFIX}.jsonl" $PY - <<'EOF' || echo "transformer MFU: failed or timed out" >&2
"""EW and PCGrad (engine) train steps of a bf16 Transformer: step time and MFU."""
import json, os, statistics, time

import jax
import numpy as np
import optax
from flax import nnx

from mtl_jax.aggregators import get_aggregator
from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec
from mtl_jax.models.factory import build_from_config
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate, shard_batch

cfg = {k: int(os.environ[k]) for k in ("batch", "length", "width", "layers", "heads", "rounds", "steps")}
peak = float(os.environ.get("PEAK_TFLOPS", "989")) * 1e12  # H200 dense bf16
vocab, num_tasks = 32000, 4
tasks = (TaskSpec("tags", "tagging", 17),) + tuple(TaskSpec(f"label{t}", "classification", 2) for t in range(num_tasks - 1))
spec = DatasetSpec("mfu_text", InputSpec("text", "tokens", (), vocab), tasks)
rng = np.random.default_rng(0)
shape = (cfg["batch"], cfg["length"])
host = {"tokens": rng.integers(1, vocab, shape).astype(np.int32), "tokens_mask": np.ones(shape, bool),
        "tags": rng.integers(0, 17, shape).astype(np.int32), "tags_mask": np.ones(shape, bool)}
host.update({f"label{t}": rng.integers(0, 2, cfg["batch"]).astype(np.int32) for t in range(num_tasks - 1)})
config = {"trunk": "transformer", "hidden": cfg["width"], "num_layers": cfg["layers"], "num_heads": cfg["heads"],
          "max_length": cfg["length"], "dtype": "bfloat16", "dropout": 0.0}
mesh = data_mesh()
batch = shard_batch(host, mesh)
device = jax.devices()[0]
for method in ("sum", "pcgrad"):
    model, params = build_from_config(config, spec, [t.name for t in tasks], nnx.Rngs(0))
    aggregator, optimizer = get_aggregator(method), optax.adam(1e-4)
    state = replicate(create_train_state(params, optimizer, aggregator, num_tasks, 0), mesh)
    step = make_train_step(model, aggregator, optimizer, mesh, gradient_stats=False)
    compiled = step.jitted.lower(state, batch).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0)) if cost else 0.0
    for _ in range(2):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(cfg["rounds"]):
        started = time.perf_counter()
        for _ in range(cfg["steps"]):
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append((time.perf_counter() - started) / cfg["steps"])
    median = statistics.median(times)
    memory = compiled.memory_analysis()
    row = {"benchmark": "transformer_mfu", "method": method, "tasks": num_tasks, **cfg, "dtype": "bfloat16",
           "parameters": int(sum(x.size for x in jax.tree.leaves(params))),
           "median_step_ms": round(1e3 * median, 3), "xla_flops_per_step": flops,
           "tflops_per_s": round(flops / median / 1e12, 3),
           "mfu": round(flops / median / peak, 4) if device.platform != "cpu" else None,
           "peak_tflops_assumed": peak / 1e12,
           "temp_bytes": int(memory.temp_size_in_bytes) if memory is not None else None,
           "device_kind": device.device_kind, "platform": device.platform, "jax": jax.__version__}
    print(json.dumps(row), flush=True)
    with open(os.environ["OUT"], "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
EOF
echo "done: $(ls "${OUT_DIR}"/*_"${SUFFIX}".jsonl 2>/dev/null | tr '\n' ' ')" >&2
