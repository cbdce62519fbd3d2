"""Every shipped config loads, and the paper-scale ones resolve to the published shapes."""

import glob
import importlib.util
import os

import jax
import pytest
from flax import nnx

from liquid_jax.data.vocab import VocabLayout
from liquid_jax.models import Transformer, count_params
from liquid_jax.train.setup import model_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_KEYS = ("total_steps", "log_every_steps", "checkpoint_every_steps", "seed")
CONFIGS = sorted(
    os.path.basename(p)
    for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
    if not p.endswith("__init__.py")
)


def _check_run(config, where, llm):
    for key in RUN_KEYS:
        assert key in config, (where, key)
    assert config.total_steps > 0, where
    if llm:
        assert "eval_every_steps" in config and "optim" in config and "data" in config, where


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_with_stable_keys(name):
    """Every file asserts something: a training run its stable keys, the encode config
    its VQGAN and source, the demo one run config per training stage.

    Mutation tried: the demo config without ``base.log_every_steps`` (deleted from the
    loaded config) fails the demo case, which used to return before any assert."""
    config = _load(name).get_config()
    if name.startswith("encode"):  # not a training run
        assert "vqgan" in config and "source" in config
    elif name.startswith("demo"):  # one section per stage; each is loaded by its stage
        _check_run(config.vqgan, "demo.vqgan", llm=False)
        _check_run(config.base, "demo.base", llm=True)
        _check_run(config.liquid, "demo.liquid", llm=True)
        assert "encode" in config and "vqgan" in config.encode
        assert {"world", "eval"} <= set(config)
    else:
        _check_run(config, name, llm=not name.startswith("vqgan"))


def test_every_config_file_is_checked():
    assert {"demo.py", "encode_shapes.py", "liquid.py", "smoke.py", "vqgan_shapes.py"} <= set(
        CONFIGS
    )


# (preset, text vocabulary of the base tokenizer, billions of parameters before expansion)
BASES = [
    ("gemma_7b", 256000, 8.54), ("gemma2_2b", 256000, 2.61), ("gemma2_9b", 256000, 9.24),
    ("qwen2.5_0.5b", 151936, 0.49), ("qwen2.5_7b", 152064, 7.62),
    ("qwen2.5_32b", 152064, 32.76), ("llama3.2_1b", 128256, 1.24),
]  # fmt: skip


@pytest.mark.parametrize("base, text_vocab, billions", BASES)
def test_scaling_bases_resolve_to_published_shapes(base, text_vocab, billions):
    config = _load("liquid.py").get_config(f"base={base}")
    layout = VocabLayout(text_vocab, 8192, boi_id=7, eoi_id=8, unconditional_id=9,
                         bos_id=2, eos_id=1)  # fmt: skip
    spec = model_spec(config, layout)
    assert spec.vocab_size == text_vocab + 8192
    assert str(spec.dtype) == "bfloat16" and spec.remat == "full"
    model = nnx.eval_shape(lambda: Transformer(spec, rngs=nnx.Rngs(0)))
    added = 8192 * spec.hidden_size * (1 if spec.tie_embeddings else 2)
    assert (count_params(model) - added) / 1e9 == pytest.approx(billions, rel=0.01)
    large = base in ("gemma_7b", "gemma2_9b", "qwen2.5_7b", "qwen2.5_32b")
    assert config.optim.grad_clip == (0.5 if large else 1.0)
    assert config.train.max_z_weight == (2e-4 if large else 0.0)
    assert jax.tree.leaves(nnx.state(model))  # abstract only: nothing was allocated


def test_paper_recipe_hyperparameters():
    c = _load("liquid_gemma7b.py").get_config()
    assert (c.optim.lr, c.optim.warmup, c.optim.weight_decay) == (2e-5, 0.03, 0.0)
    assert (c.data.batch_size, c.data.seq_len, c.data.t2i_fraction) == (1024, 2048, 0.8)
    assert (c.optim.grad_clip, c.train.max_z_weight) == (0.5, 2e-4)


def test_a_model_wide_key_inside_model_spec_is_refused():
    """``model.remat`` (default "none") used to win silently over ``model.spec.remat``."""
    config = _load("demo.py").get_config().liquid
    config.model.spec.remat = "full"
    layout = VocabLayout(768, 512, boi_id=7, eoi_id=8, unconditional_id=9, bos_id=2, eos_id=1)
    with pytest.raises(ValueError, match=r"set model.remat, not model.spec"):
        model_spec(config, layout)
