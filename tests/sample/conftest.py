"""Shared tiny assets: one tokenizer directory, model, layout and VQGAN per session."""

import pytest

from liquid_jax.sample.api import Sampler
from tests.tiny import make_sampling_assets


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    """(model, layout, tokenizer, vqgan, tokenizer_dir)."""
    directory = str(tmp_path_factory.mktemp("tiny_tokenizer"))
    return (*make_sampling_assets(directory), directory)


@pytest.fixture(scope="session")
def sampler(assets):
    model, layout, tokenizer, vqgan, _ = assets
    return Sampler(model, layout, tokenizer, vqgan, batch_size=4)
