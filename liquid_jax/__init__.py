"""liquid_jax: Liquid (one next-token model for text, images and image understanding) in JAX.

Sub-packages answer one question each: ``models`` (what the networks are), ``parallel``
(how arrays are laid out), ``data`` (what the model eats), ``train`` (how it learns),
``sample`` (how it generates), ``export`` (how weights move to and from PyTorch),
``evals`` (how quality is measured).
"""

import flax

# Parameters carry logical axis names; liquid_jax places them itself (jit with
# out_shardings, see parallel/sharding.py), so Flax must not try to shard each variable
# eagerly at construction, which fails outside a mesh context.
flax.config.update("flax_always_shard_variable", False)

__version__ = "0.1.0"
