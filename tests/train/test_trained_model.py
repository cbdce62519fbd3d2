"""A finished training run is usable as it stands: sampling reads its checkpoint, and
``export`` hands it to transformers with the same logits."""

import numpy as np
import pytest
import torch
import transformers

from configs.smoke import get_config
from liquid_jax.export.run_export import export_run
from liquid_jax.sample.loading import load_for_sampling
from liquid_jax.train.loop import train
from liquid_jax.train.trained_model import load_trained_model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = get_config("steps=4")
    config.eval_every_steps = 0
    train(config, str(workdir))
    return str(workdir)


def test_sampling_reads_the_latest_checkpoint(run_dir):
    model, layout, tokenizer, step = load_trained_model(run_dir)
    assert step == 4 and layout.num_image_codes == 64
    sampler = load_for_sampling(run_dir)
    out = sampler.text(["a red circle"], max_new_tokens=6)
    assert len(out) == 1 and isinstance(out[0], str)
    tokens = np.array([tokenizer.encode("a small blue square")], np.int32)
    from flax import nnx

    loaded = nnx.merge(sampler.decoder.graphdef, sampler.decoder.state)
    np.testing.assert_array_equal(np.asarray(loaded(tokens)), np.asarray(model(tokens)))


def test_export_of_a_run_loads_in_transformers_with_the_same_logits(run_dir, tmp_path):
    out = export_run(run_dir, str(tmp_path / "hf"))
    model, layout, _, _ = load_trained_model(run_dir)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).float().eval()
    tokens = np.random.default_rng(0).integers(0, layout.vocab_size, (2, 12)).astype(np.int32)
    ours = np.asarray(model(tokens))[..., : layout.vocab_size]
    with torch.no_grad():
        theirs = hf(torch.as_tensor(tokens).long()).logits.numpy()
    np.testing.assert_allclose(theirs[..., : layout.vocab_size], ours, atol=1e-4)
    assert (tmp_path / "hf" / "liquid_vocab.json").exists()
    assert transformers.AutoTokenizer.from_pretrained(out) is not None
