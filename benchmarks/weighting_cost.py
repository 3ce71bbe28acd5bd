"""Cost of the weighting computation alone, relative to the EW step (issue 6 target: ≤ 5% of
the EW step at T = 8 on the reference MLP, except methods whose paper says otherwise).

For every registered method, one JSON line:
- Gramian- and loss-level methods: ``weigh`` (Gramian → weights, or losses → weights), jitted,
  run N times inside one compiled ``lax.fori_loop`` with the state carried (so dispatch
  overhead is excluded and nothing is hoisted: the Gramian is perturbed every iteration);
- Jacobian-level methods (``combine``: GradDrop, TrimmedMean, MoCo, ExcessMTL, DB-MTL): the
  same for ``combine`` on a T × P Jacobian shaped like the reference MLP's shared parameters —
  their cost is P-sized by construction (listed with ``"jacobian_level": true``).

The EW step (one backward pass of the summed loss, ``benchmarks/step_time.py``'s ``ew`` case)
is timed in the same process; ``weighting_us`` is the loop's time per iteration minus that of
an empty loop (``empty_iteration_us``: on GPUs each while-loop iteration costs a predicate
round-trip to the host, which the train step does not pay); ``ratio_to_ew_step`` = weighting
time / EW step time and ``within_target`` = ratio ≤ 0.05.

    python benchmarks/weighting_cost.py [--tasks 8] [--methods pcgrad nashmtl] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.aggregators import REGISTRY, JacobianAggregator, WeightingInputs, get_aggregator, initial_state
from mtl_jax.parallel import data_mesh, shard_batch

from step_time import HIDDEN, INPUT, Case, Runner, _batch, device_fields, emit  # benchmarks/ is on sys.path

TARGET = 0.05


def _aggregator(name: str, num_tasks: int):
    if name == "constant":
        return get_aggregator("constant", weights=[float(t + 1) for t in range(num_tasks)])
    return get_aggregator(name)


def _shared_params_like(num_tasks: int) -> dict:
    sizes = (INPUT, *HIDDEN)
    return {f"layer{i}": {"kernel": jnp.zeros((a, b)), "bias": jnp.zeros((b,))}
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}


def looped(aggregator, num_tasks: int, iterations: int, rng: np.random.Generator):
    """A compiled function running the weighting ``iterations`` times; and its inputs."""
    jac_small = rng.standard_normal((num_tasks, 64)).astype(np.float32)
    gram = jnp.asarray(jac_small @ jac_small.T)
    losses = jnp.asarray(rng.uniform(0.5, 2.0, num_tasks), jnp.float32)
    key = jax.random.key(0)
    shared = _shared_params_like(num_tasks)
    state = initial_state(aggregator, num_tasks, shared)
    if isinstance(aggregator, JacobianAggregator):
        jacobian = jax.tree.map(
            lambda p: jnp.asarray(rng.standard_normal((num_tasks, *p.shape)), jnp.float32), shared
        )

        def body(i, carry):
            state, acc = carry
            scale = 1.0 + 1e-6 * i.astype(jnp.float32)
            inputs = WeightingInputs(None, losses * scale, jax.random.fold_in(key, i), i)
            direction, weights, state = aggregator.combine(jax.tree.map(lambda x: x * scale, jacobian), inputs, state)
            used = sum(jnp.sum(x) for x in jax.tree.leaves(direction))  # keep all of d alive
            return state, acc + jnp.nansum(weights) + used

        args = (state,)
    else:
        def body(i, carry):
            state, acc = carry
            scale = 1.0 + 1e-6 * i.astype(jnp.float32)
            inputs = WeightingInputs(gram * scale, losses * scale, jax.random.fold_in(key, i), i)
            weights, state = aggregator.weigh(inputs, state)
            return state, acc + jnp.sum(weights)

        args = (state,)

    @jax.jit
    def run(state):
        return jax.lax.fori_loop(0, iterations, body, (state, jnp.zeros((), jnp.float32)))

    return run, args


def empty_loop(num_tasks: int, iterations: int, rng: np.random.Generator):
    """The same compiled loop with a trivial weighting (w = the scaled losses): its time per
    iteration is the loop's own overhead (on GPUs a while-loop iteration costs a predicate
    round-trip to the host), subtracted from every method's time."""
    losses = jnp.asarray(rng.uniform(0.5, 2.0, num_tasks), jnp.float32)

    def body(i, acc):
        return acc + jnp.sum(losses * (1.0 + 1e-6 * i.astype(jnp.float32)))

    @jax.jit
    def run(acc):
        return jax.lax.fori_loop(0, iterations, body, acc)

    return run, (jnp.zeros((), jnp.float32),)


def time_call(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[8])
    parser.add_argument("--methods", nargs="+", default=["all"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=50, help="weightings per timed call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", help="also append the JSON lines to this file")
    args = parser.parse_args()
    names = sorted(REGISTRY) if args.methods == ["all"] else args.methods
    mesh = data_mesh()
    for num_tasks in args.tasks:
        rng = np.random.default_rng(num_tasks)
        ew = Runner(Case("ew", "full"), num_tasks, shard_batch(_batch(rng, args.batch, num_tasks), mesh), mesh)
        ew_step = statistics.median(ew.run(10) for _ in range(args.repeats))
        overhead = time_call(*empty_loop(num_tasks, args.iterations, rng), args.repeats) / args.iterations
        for name in names:
            row = {"benchmark": "weighting_cost", "method": name, "tasks": num_tasks,
                   "model": "mlp " + "-".join(map(str, (INPUT, *HIDDEN))), **device_fields(mesh)}
            try:
                aggregator = _aggregator(name, num_tasks)
                fn, fn_args = looped(aggregator, num_tasks, args.iterations, rng)
                seconds = time_call(fn, fn_args, args.repeats) / args.iterations
            except ValueError as error:  # e.g. Krum at T < 5
                row["skipped"] = str(error)
            else:
                net = max(seconds - overhead, 0.0)
                ratio = net / ew_step
                row.update({
                    "jacobian_level": isinstance(aggregator, JacobianAggregator),
                    "weighting_us": round(1e6 * net, 2),
                    "loop_iteration_us": round(1e6 * seconds, 2),
                    "empty_iteration_us": round(1e6 * overhead, 2),
                    "ew_step_ms": round(1e3 * ew_step, 4),
                    "ratio_to_ew_step": round(ratio, 4),
                    "within_target": ratio <= TARGET,
                })
            emit(row, args.out)


if __name__ == "__main__":
    main()
