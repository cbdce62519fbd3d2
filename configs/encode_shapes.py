"""Extract VQ codes of the shapes world (or any image-text source) for LLM training.

    liquid-jax encode-images --config configs/encode_shapes.py --workdir /tmp/codes \
        --config.vqgan.workdir=/tmp/vqgan            # a train-vqgan run (vqgan_shapes.py)
    liquid-jax encode-images --config configs/encode_shapes.py:runlocal \
        --workdir /tmp/codes_small --config.vqgan.workdir=/tmp/vq_small
    liquid-jax encode-images --config configs/encode_shapes.py --workdir /data/codes \
        --config.vqgan.path=/ckpt/chameleon_vqgan --config.image_size=512 \
        --config.source='jsonl:/data/{split}.jsonl' --config.splits=train,validation

Codes land in ``WORKDIR/codes/SPLIT`` (read them with the spec ``codes:WORKDIR/codes/SPLIT``);
``WORKDIR/encode_summary.json`` holds counts, skips by reason and images/s. Rerunning the
same command resumes after the last finished chunk.

``arg``: ``runlocal`` shrinks the shapes world and takes ``vqgan_shapes.py:runlocal``'s
model (the VQGAN that ``train-vqgan --config configs/vqgan_shapes.py:runlocal`` trains).
"""

import ml_collections

from liquid_jax.config_utils import parse_arg, sibling
from liquid_jax.data.shapes.sample import STYLE_DEFAULTS


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    runlocal = parse_arg(arg, runlocal=False).runlocal
    vq_train = sibling(__file__, "vqgan_shapes").get_config("runlocal" if runlocal else "")
    c = ml_collections.ConfigDict()

    # What to encode: a source spec with {split} where the split name goes
    # (jsonl:/d/{split}.jsonl, tfds:/d/ds/1.0.0?split={split}, folder:/d/{split}), one
    # spec without it for a single split, or "shapes_world" (built into
    # shapes_world.dir, default WORKDIR/shapes_world, then read through tfds).
    c.source = "shapes_world"
    c.splits = "train,validation,test"
    c.shapes_world = ml_collections.ConfigDict()
    c.shapes_world.dir = ""
    c.shapes_world.num_train = 256 if runlocal else 4000
    c.shapes_world.num_val = 32 if runlocal else 200
    c.shapes_world.num_test = 32 if runlocal else 200
    c.shapes_world.image_size = vq_train.data.image_size
    c.shapes_world.seed = 0
    for key in STYLE_DEFAULTS:  # the world's style, as the VQGAN config sets it
        c.shapes_world[key] = vq_train.data[key]

    # Which VQGAN: exactly one of path (a taming/Chameleon checkpoint: directory, .yaml,
    # .ckpt or .safetensors) and workdir (a train-vqgan run; its newest checkpoint unless
    # step >= 0, read with the model config below).
    c.vqgan = ml_collections.ConfigDict()
    c.vqgan.path = ""
    c.vqgan.workdir = ""
    c.vqgan.step = -1
    c.vqgan.model = vq_train.model
    c.vqgan.dtype = ""  # compute dtype override, e.g. "bfloat16"; "" keeps the checkpoint's

    # Pre-processing: short side to image_size, centre crop (Liquid's); or, with buckets
    # enabled, the nearest (w, h) bucket of about target_pixels (0: image_size^2).
    c.image_size = vq_train.data.image_size
    c.buckets = ml_collections.ConfigDict()
    c.buckets.enabled = False
    c.buckets.target_pixels = 0
    c.buckets.max_ratio = 2.0

    # Throughput and resumability. batch_size is global (all hosts and devices); the
    # output is finished chunk by chunk of records_per_chunk input records.
    c.batch_size = 32 if runlocal else 256
    c.records_per_chunk = 64 if runlocal else 2048
    c.num_threads = 8
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.log_every_s = 10.0

    # Bad records are skipped and counted; more than this is an error (-1: no limit).
    c.skips = ml_collections.ConfigDict()
    c.skips.max_fraction = 0.1
    c.skips.max_count = -1
    c.skips.min_seen = 1000
    return c
