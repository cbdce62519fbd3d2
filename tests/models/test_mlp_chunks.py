"""The MLP in blocks of its intermediate features (``model.mlp_chunk``): the same loss
and gradients as the whole MLP, on one device and on a sharded mesh."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from liquid_jax.errors import ConfigError
from liquid_jax.models import Transformer
from liquid_jax.models.mlp_chunks import block_size
from liquid_jax.parallel import MeshConfig, create_sharded, make_mesh
from tests import tiny

VOCAB = 300


def _loss_and_grads(model, tokens):
    @nnx.jit
    def step(model):
        loss = lambda m: jnp.mean(jax.nn.logsumexp(m(tokens)[..., :VOCAB], -1))
        return nnx.value_and_grad(loss)(model)

    return step(model)


def _tokens(shape):
    return jnp.asarray(np.random.RandomState(0).randint(0, VOCAB, shape), jnp.int32)


@pytest.mark.parametrize(
    "features, at_most, size",
    [(24576, 2048, 2048), (18944, 2048, 512), (48, 16, 16), (36, 10, 9), (48, 0, 0), (48, 64, 0)],
)
def test_block_size_is_the_largest_divisor_preferring_whole_tiles(features, at_most, size):
    assert block_size(features, at_most) == size


@pytest.mark.parametrize("family, remat", [("gemma", "full"), ("llama", "none")])
def test_blocks_give_the_same_loss_and_gradients(family, remat):
    """GeGLU and SwiGLU, 128 features in blocks of 32, under full remat and none."""
    spec = tiny.tiny_spec(family, vocab_size=VOCAB, num_layers=2, remat=remat)
    tokens = _tokens((2, 8))
    whole = _loss_and_grads(Transformer(spec, rngs=nnx.Rngs(1)), tokens)
    blocks = _loss_and_grads(Transformer(spec.replace(mlp_chunk=32), rngs=nnx.Rngs(1)), tokens)
    chex.assert_trees_all_close(blocks, whole, atol=1e-6, rtol=1e-5)


def test_blocks_on_a_sharded_mesh_match_one_device(cpu_devices):
    """Each block's weights are cast and gathered in their own shards and its gradients
    summed back into them: the same gradients as the whole MLP on one device."""
    spec = tiny.tiny_spec("qwen2", vocab_size=VOCAB, num_layers=2, tie_embeddings=False)
    tokens = _tokens((4, 8))
    want = _loss_and_grads(Transformer(spec, rngs=nnx.Rngs(0)), tokens)
    mesh = make_mesh(MeshConfig(data=1, fsdp=4, tensor=2))
    blocked = spec.replace(mlp_chunk=64, remat="full")
    sharded = create_sharded(lambda: Transformer(blocked, rngs=nnx.Rngs(0)), mesh)
    with jax.set_mesh(mesh):
        got = _loss_and_grads(sharded, tokens)
    chex.assert_trees_all_close(jax.device_get(got), want, atol=1e-6, rtol=1e-5)


def test_a_policy_that_saves_the_gate_is_refused():
    with pytest.raises(ConfigError, match="saves the MLP's gate"):
        tiny.tiny_spec("llama", mlp_chunk=32, remat="minimal")
