"""A finished training run is usable as it stands: sampling reads its checkpoint, and
``export`` hands it to transformers with the same logits."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
import transformers
import yaml
from flax import nnx

from configs.smoke import get_config
from liquid_jax.data.pipeline.dataset import PipelineConfig, make_iterator
from liquid_jax.errors import ConfigError
from liquid_jax.export import save_vqgan
from liquid_jax.models.vqgan import VQGAN, VQGANConfig
from liquid_jax.runs.export_run import export_run
from liquid_jax.runs.trained_model import load_trained_model
from liquid_jax.sample.loading import load_for_sampling
from liquid_jax.train.loss import loss_sums, metrics_from_sums
from tests.tiny import VQGAN_FIELDS


@pytest.fixture(scope="module")
def run_dir(smoke_run):
    """The shared 40-step smoke run: checkpoints 20 and 40, validation loss logged at both."""
    return smoke_run[0]


def _logged_val_loss(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["val_loss"] for r in map(json.loads, f) if "val_loss" in r}


def _val_loss(model, layout, tokenizer):
    """The smoke config's validation loss (its first ``eval_steps`` batches), computed
    here with the model's plain forward pass on one device."""
    config = get_config()
    data = config.data.to_dict()
    data.update(data.pop("validation"))
    it = make_iterator(PipelineConfig.from_config(data), tokenizer, layout,
                       process_index=0, process_count=1)  # fmt: skip
    forward = nnx.jit(lambda m, b: m(b["tokens"], positions=b["positions"],
                                     segment_ids=b["segment_ids"]))  # fmt: skip
    total = None
    with it:
        for _ in range(config.eval_steps):
            batch = next(it)
            sums = loss_sums(forward(model, batch), batch)
            total = sums if total is None else {k: total[k] + v for k, v in sums.items()}
    return float(metrics_from_sums(total, 0.0)["loss"])


def test_sampling_reads_the_latest_checkpoint(run_dir):
    """The model ``load_for_sampling`` finds scores the validation loss the training loop
    logged for its final weights, not the one of the earlier checkpoint.

    Mutation tried: ``checkpoint.restore_subtree`` taking the oldest checkpoint
    (``step = min(done)``) fails here; the old test (one checkpoint, the sampler's model
    compared with ``load_trained_model``, which reads through the same function) passed.
    """
    logged = _logged_val_loss(run_dir)
    assert sorted(logged) == [20, 40] and abs(logged[40] - logged[20]) > 1e-3
    sampler = load_for_sampling(run_dir)
    model = nnx.merge(sampler.decoder.graphdef, sampler.decoder.state)
    assert _val_loss(model, sampler.layout, sampler.tokenizer) == pytest.approx(
        logged[40], rel=1e-4
    )
    _, layout, _, step = load_trained_model(run_dir)
    assert step == 40 and layout.num_image_codes == 64
    out = sampler.text(["a red circle"], max_new_tokens=6)
    assert len(out) == 1 and isinstance(out[0], str)


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


def test_export_refuses_a_vqgan_stock_encoders_cannot_reproduce(run_dir, tmp_path):
    """The demo's VQGAN encodes each tile of codes alone (``encode_tile``): export stops
    before writing anything, and with ``allow_nonstock_vqgan`` says so in vqgan/README.md."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    vqgan_dir = tmp_path / "vqgan"
    config = VQGANConfig(resolution=16, encode_tile=1, **VQGAN_FIELDS)
    save_vqgan(VQGAN(config, rngs=nnx.Rngs(0)), str(vqgan_dir), formats=("safetensors",))
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps({**info, "vqgan": str(vqgan_dir)}))

    with pytest.raises(ConfigError, match=r"encode_tile=1 \(each 1x1 tile of codes is encoded"):
        export_run(str(run), str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "allowed"
    export_run(str(run), str(out), allow_nonstock_vqgan=True)
    readme = (out / "vqgan" / "README.md").read_text()
    assert "`encode_tile: 1`" in readme and "ChameleonVQVAE" in readme
    assert (
        yaml.safe_load((out / "vqgan" / "vqgan.yaml").read_text())["liquid_jax"]["encode_tile"] == 1
    )
