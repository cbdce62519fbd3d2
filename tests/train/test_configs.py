"""Every shipped config loads (with every argument the docs show), the paper-scale ones
resolve to the published shapes, and the settings dataclasses default to the config."""

import dataclasses
import glob
import importlib
import os
import re

import jax
import pytest
from flax import nnx

from liquid_jax.config_utils import base_config
from liquid_jax.data.pipeline.config import PipelineConfig
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.models import Transformer, count_params
from liquid_jax.parallel import MeshConfig
from liquid_jax.train.setup import model_spec
from liquid_jax.train.train_step import StepConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name):
    """``configs/NAME`` (``"liquid.py"``) as a module."""
    return importlib.import_module(f"configs.{name.removesuffix('.py')}")


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


def _documented_invocations() -> list[str]:
    """Every ``configs/X.py[:arg]`` that README.md, docs/ and the config files show."""
    texts = [os.path.join(REPO, "README.md"), *glob.glob(os.path.join(REPO, "docs", "*.md")),
             *glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True)]  # fmt: skip
    found = set()
    for path in texts:
        with open(path, encoding="utf-8") as f:
            found |= set(re.findall(r"configs/(\w+\.py(?::[\w.,=/-]*\w)?)", f.read()))
    return sorted(
        x for x in found if os.path.exists(os.path.join(REPO, "configs", x.split(":")[0]))
    )


INVOCATIONS = _documented_invocations()


def test_documented_invocations_are_found():
    assert {"liquid.py:base=gemma_7b,init=/ckpt/liquid-gemma7b-init",
            "liquid_gemma7b.py:init=/ckpt/liquid-gemma7b-init",
            "smoke.py", "demo.py:runlocal"} <= set(INVOCATIONS)  # fmt: skip


def _llm_sections(config):
    """The settings the LLM trainer builds from a config (fails on a key no field takes)."""
    return (
        PipelineConfig.from_config(config.data),
        PipelineConfig.from_config(config.data, validation=True),
        MeshConfig.from_config(config.mesh),
        StepConfig.from_config(config.train, text_vocab_size=100),
    )


@pytest.mark.parametrize("invocation", INVOCATIONS)
def test_documented_invocation_resolves(invocation):
    """``--config configs/X.py:arg`` as the docs write it; an LLM config's sections build."""
    name, _, arg = invocation.partition(":")
    config = _load(name).get_config(arg)
    for llm in [config.base, config.liquid] if name == "demo.py" else [config]:
        if "train" in llm:
            _llm_sections(llm)


@pytest.mark.parametrize("arg", ["", "init=/ckpt/liquid-gemma7b-init", "runlocal", "steps=7"])
def test_gemma7b_preset_is_the_recipe_on_gemma_7b(arg):
    """The preset adds nothing to the recipe but its base."""
    preset = _load("liquid_gemma7b.py").get_config(arg)
    recipe = _load("liquid.py").get_config(",".join(filter(None, ["base=gemma_7b", arg])))
    assert preset.to_dict() == recipe.to_dict()


def test_gemma7b_preset_refuses_another_base():
    with pytest.raises(ValueError, match="'base' unknown"):
        _load("liquid_gemma7b.py").get_config("base=qwen2.5_7b")


def test_liquid_recipe_resolves_as_before_the_move():
    """``liquid.py`` with no argument: the values ``config_utils.liquid_recipe`` gave."""
    c = _load("liquid.py").get_config()
    assert (c.total_steps, c.checkpoint_every_steps, c.eval_every_steps, c.eval_steps) == (
        30000, 1000, 1000, 16)  # fmt: skip
    assert (c.mesh.data, c.mesh.fsdp, c.mesh.tensor) == (1, -1, 1)
    assert (c.model.preset, c.model.init_from, c.model.remat) == ("gemma_7b", "", "full")
    assert (c.model.param_dtype, c.model.dtype) == ("float32", "bfloat16")
    assert (c.data.num_image_codes, c.data.downsample, c.data.num_workers) == (8192, 16, 8)
    local = _load("liquid.py").get_config("base=qwen2.5_0.5b,init=/x,runlocal")
    assert (local.model.preset, local.model.init_from) == ("", "/x")
    assert (local.data.seq_len, local.data.batch_size, local.data.num_workers) == (512, 8, 0)
    assert (local.total_steps, local.optim.grad_clip, local.train.max_z_weight) == (20, 1.0, 0.0)


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_settings_dataclasses_default_to_the_base_config():
    """``base_config`` is where defaults live: each dataclass built from its section equals
    the dataclass's own defaults, and the section names every field.

    Mutation tried: ``PipelineConfig.seq_len = 512`` (its old default, against the config's
    2048) fails here; so does a ``MeshConfig`` field the config lacks."""
    c = base_config()
    data = c.data.to_dict()
    data.pop("validation")
    assert set(data) == _field_names(PipelineConfig)
    assert PipelineConfig.from_config(c.data) == PipelineConfig()
    assert set(c.mesh) == _field_names(MeshConfig)
    assert MeshConfig.from_config(c.mesh) == MeshConfig()
    # StepConfig's fields come from ``train`` (new_rows_only_below from new_rows_only).
    assert _field_names(StepConfig) - {"new_rows_only_below"} <= set(c.train)
    assert "new_rows_only" in c.train
    assert StepConfig.from_config(c.train, text_vocab_size=100) == StepConfig()
