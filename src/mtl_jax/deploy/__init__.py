"""Deployment: a trained run exported as a self-contained artifact, predictions and serving.

* :mod:`mtl_jax.deploy.artifact` — the artifact format: write it, and load it with jax and
  numpy only (no flax, no model code).
* :mod:`mtl_jax.deploy.export` — a run directory (its best or latest checkpoint) → artifact.
* :mod:`mtl_jax.deploy.preprocess` / :mod:`mtl_jax.deploy.postprocess` — raw inputs →
  padded arrays with the training pipeline's own tokenisation, head outputs → JSON.
* :mod:`mtl_jax.deploy.predict` — length-bucketed batched prediction.
* :mod:`mtl_jax.deploy.batching`, :mod:`mtl_jax.deploy.server` — the HTTP server with
  dynamic batching (optional extra ``serve``: uvicorn + starlette, imported lazily).
* :mod:`mtl_jax.deploy.lineage` — ``load_init_params``: fine-tuning from a run or an artifact.

Nothing is imported here, so ``import mtl_jax.deploy.artifact`` stays free of flax.
"""
