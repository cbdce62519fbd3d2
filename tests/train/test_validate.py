"""What ``train`` checks before it builds anything: the config's paths, local or in a
``gs://`` bucket (the in-memory stand-in of ``tests/conftest.py``), each missing one a
``UserError`` naming the key and the path."""

import pytest

from configs.smoke import get_config as smoke_config
from liquid_jax import fileio
from liquid_jax.errors import ConfigError, PathNotFoundError
from liquid_jax.train.validate import check_config


def _config(text_sources, image_text_sources=("shapes:10",), **model):
    c = smoke_config()
    c.data.text_sources, c.data.image_text_sources = tuple(text_sources), image_text_sources
    c.model.update(model)
    return c


def test_sources_and_init_from_in_a_bucket(gcs):
    for name in ("a.jsonl", "b.jsonl", "notes.txt"):
        fileio.write_text(f"gs://bucket/text/{name}", '{"text": "w1"}\n')
    check_config(_config(["jsonl:gs://bucket/text/*.jsonl"]), "gs://bucket/run")
    assert fileio.glob("gs://bucket/text/*.jsonl") == [
        "gs://bucket/text/a.jsonl", "gs://bucket/text/b.jsonl"]  # fmt: skip
    with pytest.raises(PathNotFoundError, match=r"^data.text_sources: gs://bucket/t/\*.jsonl: "
                       "the pattern matches no files$"):  # fmt: skip
        check_config(_config(["jsonl:gs://bucket/t/*.jsonl"]), "gs://bucket/run")
    init = "gs://bucket/liquid-init"
    fileio.write_text(f"{init}/config.json", "{}")
    with pytest.raises(PathNotFoundError, match="^model.init_from: gs://bucket/liquid-init: no "
                       "liquid_vocab.json"):  # fmt: skip
        check_config(_config([], init_from=init), "gs://bucket/run")
    fileio.write_text(f"{init}/liquid_vocab.json", "{}")
    with pytest.raises(PathNotFoundError, match="no tokenizer"):
        check_config(_config([], init_from=init), "gs://bucket/run")
    fileio.write_text(f"{init}/tokenizer.json", "{}")
    check_config(_config([], init_from=init), "gs://bucket/run")


def test_local_paths_kinds_and_empty_mixtures(tmp_path):
    codes = tmp_path / "codes"
    with pytest.raises(PathNotFoundError, match=f"^data.image_text_sources: {codes}: no such"):
        check_config(_config([], (f"codes:{codes}",)), str(tmp_path))
    codes.mkdir()
    check_config(_config([], (f"codes:{codes}",)), str(tmp_path))
    with pytest.raises(ConfigError, match="data.image_text_sources: 'jsonl:x': kind 'jsonl'"):
        check_config(_config([], ("jsonl:x",)), str(tmp_path))
    with pytest.raises(ConfigError, match="both empty"):
        check_config(_config([], ()), str(tmp_path))
    c = _config(["shapes_text:10"])
    c.data.validation.text_sources = (f"txt:{tmp_path}/val.txt",)
    with pytest.raises(PathNotFoundError, match=f"^data.validation.text_sources: {tmp_path}/val"):
        check_config(c, str(tmp_path))
    check_config(c, str(tmp_path), data=False)  # a caller that feeds its own batches
