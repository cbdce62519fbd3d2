"""In-memory shapes-world sources for smoke tests and benchmarks: no files, no VQGAN.

``ShapesCodeSource`` gives code records (the schema of ``code_records``) whose codes
come from a deterministic stand-in image tokenizer, ``stand_in_codes``:

1. average-pool the ``S x S`` image to a ``grid x grid`` raster of cells;
2. quantise each cell's mean R, G, B into ``levels`` equal bins of [0, 256);
3. code = ``(r * levels + g) * levels + b``, in ``[0, levels**3)`` (64 codes for 4 levels).

So colours and coarse layout survive in the codes (a model can learn captions from
them), and the same image always gives the same codes. Records are pure functions of
``(seed, split, index)`` like the shapes world itself.
"""

from __future__ import annotations

import numpy as np

from liquid_jax.data.shapes.examples import image_text_record, text_record

STAND_IN_GRID = 8
STAND_IN_LEVELS = 4


def stand_in_num_codes(levels: int = STAND_IN_LEVELS) -> int:
    return levels**3


def stand_in_codes(
    image: np.ndarray, grid: int = STAND_IN_GRID, levels: int = STAND_IN_LEVELS
) -> np.ndarray:
    """uint8[H, W, 3] (H, W multiples of ``grid``) -> int32[grid * grid] in [0, levels**3)."""
    h, w, c = image.shape
    if c != 3 or h % grid or w % grid:
        raise ValueError(f"stand-in codes: image {image.shape} is not [k*{grid}, k*{grid}, 3]")
    cells = image.reshape(grid, h // grid, grid, w // grid, 3).astype(np.float32).mean(axis=(1, 3))
    q = np.minimum((cells * (levels / 256.0)).astype(np.int32), levels - 1)
    return ((q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]).reshape(-1).astype(np.int32)


class ShapesTextSource:
    """``num_records`` text documents of the shapes world: ``{"id", "text"}``."""

    def __init__(self, num_records: int, seed: int = 0, split: str = "train"):
        self.num_records, self.seed, self.split = int(num_records), int(seed), split
        self.name = f"shapes text [{split}] seed {seed}"

    def __len__(self) -> int:
        return self.num_records

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_records:
            raise IndexError(f"{self.name}: index {index} out of [0, {self.num_records})")
        text = text_record(self.seed, self.split, int(index))["text"]
        return {"id": f"shapes_text/{self.split}/{index}", "text": text}


class ShapesCodeSource:
    """``num_records`` captioned shapes images as code records (stand-in codes).

    Each record: ``{"codes": int32[grid*grid], "grid_h", "grid_w", "caption", "orig_w",
    "orig_h", "source_id"}``.
    """

    def __init__(
        self,
        num_records: int,
        seed: int = 0,
        split: str = "train",
        *,
        image_size: int = 32,
        grid: int = STAND_IN_GRID,
        levels: int = STAND_IN_LEVELS,
    ):
        self.num_records, self.seed, self.split = int(num_records), int(seed), split
        self.image_size, self.grid, self.levels = image_size, grid, levels
        self.num_codes = stand_in_num_codes(levels)
        self.name = f"shapes codes [{split}] seed {seed}"

    def __len__(self) -> int:
        return self.num_records

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_records:
            raise IndexError(f"{self.name}: index {index} out of [0, {self.num_records})")
        record = image_text_record(self.seed, self.split, int(index), self.image_size)
        return {
            "codes": stand_in_codes(record["image"], self.grid, self.levels),
            "grid_h": self.grid,
            "grid_w": self.grid,
            "caption": record["caption"],
            "orig_w": self.image_size,
            "orig_h": self.image_size,
            "source_id": f"shapes/{self.split}/{index}",
        }
