"""Train the image tokenizer on the synthetic shapes world.

    liquid-jax train-vqgan --config configs/vqgan_shapes.py --workdir /tmp/vqgan
    liquid-jax train-vqgan --config configs/vqgan_shapes.py:runlocal --workdir /tmp/vq_small

``runlocal`` shrinks everything to a seconds-long smoke run.
"""

import ml_collections

from liquid_jax.config_utils import parse_arg


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    runlocal = parse_arg(arg, runlocal=False).runlocal
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.total_steps = 40 if runlocal else 1500
    c.batch_size = 16 if runlocal else 32
    c.log_every_steps = 10 if runlocal else 50
    c.eval_every_steps = 40 if runlocal else 500
    c.checkpoint_every_steps = 20 if runlocal else 500
    c.keep_checkpoints = 2
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})

    c.data = ml_collections.ConfigDict()
    c.data.source = "shapes"  # or "folder" (data.path), "npz" (train/validation arrays)
    c.data.path = ""
    c.data.image_size = 32
    c.data.num_train = 256 if runlocal else 4000
    c.data.num_val = 32 if runlocal else 256
    c.data.seed = 0
    # The shapes world's background style (source "shapes"): all textures, faint grain.
    c.data.textures = ("plain", "gradient", "stripes", "speckle")
    c.data.grain = 2.0
    # The rest of the world's style (liquid_jax.data.shapes.sample.STYLE_DEFAULTS).
    c.data.backgrounds = ("dark", "gray", "light")
    c.data.layout = "jitter"  # "anchor": every shape exactly on it; "grid": 3 x 3 cells
    c.data.holdout = 0.0  # fraction of attribute combinations only the test split draws
    c.data.p_two = 0.5  # fraction of two-shape scenes
    c.data.small_extent = 0.25  # a small shape's extent, as a fraction of the image
    c.data.large_extent = 0.5  # a large shape's extent, as a fraction of the image

    # Downsample 4: a 32 px image is an 8x8 grid of 64 codes.
    c.model = ml_collections.ConfigDict()
    c.model.ch = 32 if runlocal else 64
    c.model.ch_mult = (1, 2, 2)
    c.model.num_res_blocks = 1
    c.model.attn_resolutions = ()
    c.model.z_channels = 32 if runlocal else 64
    c.model.embed_dim = 32 if runlocal else 64
    c.model.n_embed = 256 if runlocal else 512
    c.model.resolution = c.data.image_size
    c.model.in_channels = 3
    c.model.out_ch = 3
    c.model.dropout = 0.0
    c.model.encode_tile = 0  # > 0: codes see only their own tile of N x N codes (VQGANConfig)
    c.model.decode_tile = 0  # > 0: pixels of a tile of N x N codes come from those codes alone
    # Quantizer: taming's loss placement (legacy: beta on the codebook term, commitment at
    # full weight) and Euclidean codes, as Chameleon's; see VQGANConfig.
    c.model.legacy = True
    c.model.l2_normalize = False

    c.loss = ml_collections.ConfigDict()
    c.loss.l1_weight = 1.0
    c.loss.l2_weight = 1.0
    c.loss.codebook_weight = 1.0
    c.loss.perceptual_weight = 0.0
    c.loss.perceptual_weights = ""  # VGG16/LPIPS weights file; absent -> skipped with a notice
    c.loss.disc_weight = 0.0  # > 0 turns on the PatchGAN
    c.loss.disc_start = 1000
    c.loss.disc_ndf = 32
    c.loss.disc_layers = 2
    # "data": the codebook starts as farthest-point picks of the encoder's outputs on
    # train images; "uniform": taming's uniform(-1/n, 1/n).
    c.loss.codebook_init = "uniform"
    c.loss.reseed_every = 25
    c.loss.reseed_threshold = 0.03

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-3 if runlocal else 4e-4
    c.optim.b1 = 0.5
    c.optim.b2 = 0.9
    c.optim.warmup_steps = 0 if runlocal else 50
    c.optim.clip = 1.0
    # One step decay: from decay_at * total_steps on, the rate is lr * decay_factor
    # (decay_at 0: a constant rate after warmup).
    c.optim.decay_at = 0.0
    c.optim.decay_factor = 1.0
    return c
