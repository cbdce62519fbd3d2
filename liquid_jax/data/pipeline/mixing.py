"""Mixing Liquid's tasks: T2I vs I2T per image-text pair.

The paper uses each image-text pair once, 80% of them as T2I and 20% as I2T (text vs
image-text sources are weighted by the pipeline: ``text_weight``, ``image_text_weight``).
The choice draws from an explicit ``numpy.random.Generator`` so a pipeline seeded per
example is deterministic.
"""

from __future__ import annotations

import numpy as np

from liquid_jax.data.formats import DOWNSAMPLE, Example, i2t_example, t2i_example
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import ConfigError

T2I_FRACTION = 0.8  # of image-text pairs used as T2I; the rest are I2T


def image_text_example(
    tokenizer: TextTokenizer,
    layout: VocabLayout,
    caption: str,
    codes,
    rng: np.random.Generator,
    *,
    t2i_fraction: float = T2I_FRACTION,
    cfg_dropout: float = 0.1,
    image_size: tuple[int, int] | None = None,
    downsample: int = DOWNSAMPLE,
) -> Example:
    """Formats one image-text pair as T2I (probability ``t2i_fraction``) or I2T.

    ``rng`` is drawn once for the task, then (T2I only) for the instruction and dropout.
    """
    if not 0.0 <= t2i_fraction <= 1.0:
        raise ConfigError(f"t2i_fraction={t2i_fraction} is not a probability")
    if rng.random() < t2i_fraction:
        return t2i_example(
            tokenizer,
            layout,
            caption,
            codes,
            rng,
            cfg_dropout=cfg_dropout,
            image_size=image_size,
            downsample=downsample,
        )
    return i2t_example(
        tokenizer, layout, caption, codes, image_size=image_size, downsample=downsample
    )
