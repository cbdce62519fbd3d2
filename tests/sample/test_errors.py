"""Bad input fails with a message naming it, before anything is compiled or run."""

import numpy as np
import pytest

from liquid_jax.data.images import ImageError
from tests.tiny import CONTEXT

LONG = " ".join(["w1"] * (CONTEXT + 4))


@pytest.fixture
def no_compute(sampler):
    """Asserts that the test ran no prefill / decode loop."""
    before = sampler.decoder.runs
    yield sampler
    assert sampler.decoder.runs == before


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: s.t2i(""), "t2i: prompt 0 is empty"),
        (lambda s: s.t2i(["w1", "   "]), "t2i: prompt 1 is empty"),
        (lambda s: s.t2i([]), "t2i: no prompts given"),
        (lambda s: s.text([""]), "text: prompt 0 is empty"),
        (lambda s: s.t2i("w1", num_samples=0), "num_samples=0"),
        (lambda s: s.t2i("w1", grid="2by2"), "not HxW"),
        (lambda s: s.t2i("w1", grid=(0, 3)), "positive sides"),
        (lambda s: s.t2i("w1", top_p=0.0), "top_p=0.0"),
        (lambda s: s.text("w1", max_new_tokens=0), "max_new_tokens=0 must be at least 1"),
    ],
)
def test_empty_or_malformed_requests(no_compute, call, message):
    with pytest.raises(ValueError, match=message):
        call(no_compute)


def test_prompt_longer_than_the_context(no_compute):
    with pytest.raises(ValueError, match=r"text: prompt 0 is \d+ tokens, longer than .* 96"):
        no_compute.text(LONG)
    with pytest.raises(ValueError, match=r"t2i: prompt 1 is \d+ tokens, longer than"):
        no_compute.t2i(["w1", LONG])
    half = " ".join(["w1"] * (CONTEXT // 2))
    with pytest.raises(ValueError, match=r"plus max_new_tokens=60 is \d+ tokens, more than"):
        no_compute.text(["w2", half], max_new_tokens=60)


def test_grid_larger_than_the_context(no_compute):
    with pytest.raises(ValueError, match=r"plus the 10x10 grid \(100 codes\) .* context of 96"):
        no_compute.t2i("w1 w2", grid=(10, 10))
    with pytest.raises(ValueError, match=r"the 9x10 grid"):
        no_compute.t2i("w1 w2", grid="9x10")


def test_missing_or_broken_images(no_compute, tmp_path):
    with pytest.raises(ImageError, match="nope.png: no such file"):
        no_compute.i2t([str(tmp_path / "nope.png")])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="notes.png: not an image file"):
        no_compute.i2t(str(text), "w1")
    with pytest.raises(ValueError, match="i2t: question 0 is empty"):
        no_compute.i2t(str(text), "")
    with pytest.raises(ValueError, match=r"i2t: image 0 array has shape \(4, 4\)"):
        no_compute.i2t([np.zeros((4, 4), np.uint8)])
    with pytest.raises(ValueError, match="2 questions for 1 images"):
        no_compute.i2t([np.zeros((16, 16, 3), np.float32)], ["w1", "w2"])
    with pytest.raises(ValueError, match="multiples of the downsample factor"):
        no_compute.i2t([np.zeros((10, 16, 3), np.float32)])


def test_image_prompt_plus_answer_beyond_the_context(no_compute):
    big = np.zeros((32, 48, 3), np.float32)  # 8x12 = 96 codes: no room left
    with pytest.raises(ValueError, match=r"i2t: prompt 0 is \d+ tokens, longer than"):
        no_compute.i2t([big])
