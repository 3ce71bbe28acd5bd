"""mtl_jax: multi-task learning in JAX with gradient surgery inside the compiled train step."""

__version__ = "0.1.0"
