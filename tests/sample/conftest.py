"""Shared tiny assets: one tokenizer directory, model, layout and VQGAN per session."""

import pytest
from sampling_tiny import make_assets

from liquid_jax.sample.api import Sampler


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    """(model, layout, tokenizer, vqgan, tokenizer_dir)."""
    directory = str(tmp_path_factory.mktemp("tiny_tokenizer"))
    return (*make_assets(directory), directory)


@pytest.fixture(scope="session")
def sampler(assets):
    model, layout, tokenizer, vqgan, _ = assets
    return Sampler(model, layout, tokenizer, vqgan, batch_size=4)
