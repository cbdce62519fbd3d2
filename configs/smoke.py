"""CPU-mode smoke test: a tiny Liquid model on a stream generated in memory.

    liquid-jax train --config configs/smoke.py --workdir /tmp/liquid_smoke

Shapes-world text plus image-text examples whose codes come from a deterministic
stand-in tokenizer (8x8 grid, 64 codes), all three tasks mixed (text, T2I, I2T), no
prepared data; the same pipeline, step, checkpoint and metrics code as a pod job. 50
steps take about 35 s on 2 CPU cores (34 s measured for the command above, start-up and
compilation included).
"""

from liquid_jax.config_utils import base_config, parse_arg


def get_config(arg: str = ""):
    args = parse_arg(arg, steps=50)
    c = base_config()
    c.total_steps = args.steps
    c.log_every_steps = 5
    c.checkpoint_every_steps = 25
    c.eval_every_steps = 25
    c.eval_steps = 2

    c.tokenizer.train_corpus = "shapes_text:2000"
    c.tokenizer.vocab_size = 400

    c.model.family = "gemma"
    c.model.spec.update(
        vocab_size=0,  # set from the tokenizer + image codes
        hidden_size=64,
        intermediate_size=256,
        num_layers=2,
        num_heads=4,
        num_kv_heads=1,
        head_dim=16,
    )

    c.data.seq_len = 256
    c.data.batch_size = 8
    c.data.text_sources = ("shapes_text:2000",)
    c.data.image_text_sources = ("shapes:2000",)
    c.data.num_image_codes = 64
    c.data.downsample = 4  # a 32 px image is an 8x8 grid of stand-in codes
    c.data.num_packing_bins = 8
    c.data.min_records_for_fraction = 100
    c.data.validation.text_sources = ("shapes_text:64?split=validation",)
    c.data.validation.image_text_sources = ("shapes:64?split=validation",)

    c.optim.lr = 3e-3
    c.optim.warmup = 5
    c.optim.b2 = 0.99
    return c
