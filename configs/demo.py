"""The embedded default: the whole Liquid recipe on the synthetic shapes world, on CPU.

    liquid-jax demo --workdir /tmp/liquid_demo                      # this file by default
    liquid-jax demo --workdir /tmp/liquid_demo --config.liquid.total_steps=800
    liquid-jax demo --config configs/demo.py:runlocal --workdir /tmp/demo_small
    liquid-jax demo --config configs/demo.py:long --workdir /tmp/demo_long   # 3x the steps

Stages (each resumable; ``liquid_jax.demo``): shapes world (32 px, each shape exactly on
its anchor) -> VQGAN (downsample 4: an 8x8 grid of 64 codes, each its own 4x4 pixels) ->
codes -> a text-only base LM, exported to HF and imported back with the image codes
(mean resizing) -> Liquid training on text + T2I + I2T -> evals -> HF + taming export ->
report. ``budget_s`` is each stage's measured time on a 2-core CPU (it drives the ETA
lines; the target is 15 minutes in all). ``runlocal`` shrinks everything to a CI-sized
run; ``long`` triples every stage's training steps.
"""

import ml_collections

from liquid_jax.config_utils import base_config, parse_arg, sibling


def _llm(runlocal: bool, steps: int, lr: float) -> ml_collections.ConfigDict:
    """An LLM training config; the stage code fills in data sources and ``init_from``."""
    c = base_config()
    c.total_steps = steps
    c.log_every_steps = 5 if runlocal else 20
    c.checkpoint_every_steps = 100 if runlocal else 200
    c.eval_every_steps = 0  # the demo evaluates after training
    c.eval_steps = 2
    c.keep_checkpoints = 1
    c.tokenizer.vocab_size = 400 if runlocal else 768
    c.model.family = "gemma"
    # Two narrow layers: about half the time a step of four layers with 512-wide MLPs takes
    # (0.28 against 0.58 s), and in a fixed time their 1500 steps draw held-out captions
    # better than 700 steps of the wider model (docs/demo.md).
    c.model.spec.update(
        vocab_size=0,  # set from the tokenizer (+ image codes)
        hidden_size=32 if runlocal else 128,
        intermediate_size=64 if runlocal else 256,
        num_layers=1 if runlocal else 2,
        num_heads=2 if runlocal else 4,
        num_kv_heads=1 if runlocal else 2,
        head_dim=16 if runlocal else 32,
        max_position_embeddings=512,
    )
    # Save the matmul outputs, recompute the rest in the backward pass: 15% faster steps
    # than no remat on a 2-core CPU (less memory traffic), docs/demo.md.
    c.model.remat = "none" if runlocal else "dots_with_no_batch_dims_saveable"
    # Attention in blocks of 64 queries, each reading only the keys before its end: a
    # step of 16 x 256 tokens ran 27% faster (docs/demo.md).
    c.model.attn_causal_chunk = 64
    c.data.seq_len = 192 if runlocal else 256
    c.data.batch_size = 8 if runlocal else 16
    c.data.num_packing_bins = 8 if runlocal else 16
    c.data.min_records_for_fraction = 100
    c.optim.lr = lr
    c.optim.warmup = 0.05
    c.optim.min_lr_ratio = 0.1
    c.optim.b2 = 0.99
    return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = parse_arg(arg, runlocal=False, long=False)
    runlocal = args.runlocal
    c = ml_collections.ConfigDict()
    c.runlocal = runlocal
    c.seed = 0

    # 1. The shapes world: train / validation / test images with captions, and text.
    c.world = ml_collections.ConfigDict()
    c.world.image_size = 32
    c.world.num_train = 256 if runlocal else 6000
    c.world.num_val = 32 if runlocal else 128
    c.world.num_test = 32 if runlocal else 200
    c.world.seed = 0
    # Flat backgrounds: the codes of a 15-minute VQGAN then describe the shapes, not
    # background texture (the full world: all four textures and grain 2.0).
    c.world.textures = ("plain",)
    c.world.grain = 0.0
    c.world.backgrounds = ("gray",)
    # Every shape exactly on its anchor: a shape of one colour, kind and size is always
    # the same codes wherever it stands, so the codes say colour, kind and size, and the
    # LM learns where from the position words alone (shapes_scene: the "anchor" layout).
    c.world.layout = "anchor"
    # 15% of the (colour, kind, size, position) combinations appear only in the test
    # split: every test caption and image is a combination never trained on.
    c.world.holdout = 0.15
    c.world.p_two = 0.25
    # Small shapes 12 px wide (large ones 16): at 8 px a reconstructed small star, cross or
    # circle blurs into a blob of another kind (shape 0.70 on reconstructions of small
    # shapes against 0.95 at 12 px, docs/demo.md).
    c.world.small_extent = 0.375
    c.world.large_extent = 0.5

    # 2. The VQGAN (configs/vqgan_shapes.py, trained on the world's train images).
    c.vqgan = sibling(__file__, "vqgan_shapes").get_config("runlocal" if runlocal else "")
    c.vqgan.data.num_train = c.world.num_train
    c.vqgan.data.num_val = c.world.num_val
    if not runlocal:
        # Many small steps: 4 images a step learn more per image than 16 (shape 0.84 on
        # reconstructions after 1800 steps of 4, 0.75 after 450 of 16; docs/demo.md), and
        # a step encodes only its batch's distinct tiles (vqgan_tiles).
        c.vqgan.total_steps = 2100
        c.vqgan.batch_size = 4
        c.vqgan.eval_every_steps = 2100
        c.vqgan.checkpoint_every_steps = 400
        c.vqgan.model.update(ch=32, z_channels=32, embed_dim=32, n_embed=512)
        # Plain reconstruction training (no GAN) learns faster with Adam's usual betas
        # than with taming's GAN betas (0.5, 0.9): +0.8 dB at 400 steps here. The last
        # quarter of the steps runs at a fifth of the rate.
        c.vqgan.optim.update(lr=1e-3, b1=0.9, b2=0.99, decay_at=0.75, decay_factor=0.2)
    else:
        c.vqgan.total_steps = 20
        c.vqgan.model.update(ch=32, z_channels=16, embed_dim=16, n_embed=64)
    # Downsample 4 (an 8x8 grid of 64 codes per 32 px image), each code the encoding of
    # its own 4x4 pixels alone (encode_tile=1): equal patches get equal codes, so a flat
    # background is one code. The lowest level is 1x1 then, and GroupNorm's 32 groups
    # need several channels each to keep the colour (ch_mult ending in 4: 4 channels a
    # group; with 2 the map collapses to signs). Downsample 8 (16 codes) makes shorter
    # sequences, but its decoder, drawing 8x8 pixels from one code, learns shapes about
    # four times slower (docs/demo.md: shape 0.60 on reconstructions after 1200 steps,
    # against 0.79 after 540 here).
    c.vqgan.model.encode_tile = 1
    c.vqgan.model.ch_mult = (1, 2, 4)

    # 3. Codes of every split (configs/encode_shapes.py; the VQGAN is filled in).
    c.encode = sibling(__file__, "encode_shapes").get_config("runlocal" if runlocal else "")
    c.encode.vqgan.model = c.vqgan.model

    # 4. The text-only base LM (the stand-in for Gemma / Qwen), trained on the world's
    #    text corpus, exported to HF, then imported with the image codes.
    c.base = _llm(runlocal, steps=10 if runlocal else 80, lr=3e-3)
    c.base.data.num_image_codes = 0
    c.base.data.image_text_weight = 0.0

    # 5. Liquid: the imported base on text + T2I + I2T. Image-text records 3 : 1 to text
    #    and 30% of them I2T (the paper: 1 : 1 and 20%): I2T binds words to codes only
    #    with enough I2T examples, and text perplexity still falls (docs/demo.md).
    #    1800 steps: with 1500, one of two data orders missed T2I size (0.896) and CFG's
    #    lead (0.045); with 1800 both met every target (docs/demo.md).
    c.liquid = _llm(runlocal, steps=20 if runlocal else 1800, lr=4e-3)
    c.liquid.data.text_weight = 1.0
    c.liquid.data.image_text_weight = 3.0
    c.liquid.data.t2i_fraction = 0.7
    c.liquid.data.cfg_dropout = 0.1
    # Weight decay helps the held-out combinations come out right: on one VQGAN and base
    # LM, T2I colour 0.09 without it (the model drew each kind in a colour seen with it)
    # and 0.99 with 0.5; 1.0 drew colour 0.04 with another data order (docs/demo.md).
    c.liquid.optim.weight_decay = 0.5

    # 6. Evaluation on held-out test captions and images.
    c.eval = ml_collections.ConfigDict()
    c.eval.num_prompts = 8 if runlocal else 128  # test captions for T2I (3/4 one shape)
    c.eval.num_images = 8 if runlocal else 128  # test images for I2T
    c.eval.num_text = 16 if runlocal else 200  # test text documents for perplexity
    c.eval.cfg_scale = 3.0
    # Guidance only among codes the conditional branch gives at least a fifth of its best
    # code's probability (filters.guide): plain guidance at this scale lifts codes both
    # branches find implausible and draws shapes the caption did not ask for.
    c.eval.cfg_min_p = 0.2
    c.eval.temperature = 1.0
    c.eval.top_k = 64 if not runlocal else 16
    c.eval.top_p = 1.0
    c.eval.sample_batch = 8 if runlocal else 48
    c.eval.max_caption_tokens = 24 if runlocal else 40
    c.eval.probe_steps = 20 if runlocal else 300
    c.eval.probe_batch = 32 if runlocal else 64
    c.eval.grid_rows = 8
    # Single-shape test items per curve point: as many as a sampling batch holds, so the
    # loops compiled for the curve serve the final evaluation too.
    c.eval.curve_items = 8 if runlocal else 48

    # Planned seconds per stage on a 2-core CPU (ETA lines only): runs measured alone on
    # 2026-12-03 (README "Demo results").
    c.budget_s = ml_collections.ConfigDict(
        {"world": 8, "vqgan": 305, "codes": 10, "base_lm": 28, "import": 1,
         "liquid": 440, "eval": 46, "export": 2, "report": 1}
    )  # fmt: skip

    if args.long:  # the same recipe with 3x the training steps (and time) of every stage
        for section, stage in ((c.vqgan, "vqgan"), (c.base, "base_lm"), (c.liquid, "liquid")):
            section.total_steps *= 3
            c.budget_s[stage] *= 3
        c.vqgan.eval_every_steps = c.vqgan.total_steps
    return c
