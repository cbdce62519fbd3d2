"""Tiny Liquid assets for sampling tests: a word-level tokenizer with Gemma's special and
chat tokens, a random 2-layer model over text + 64 image codes, a random tiny VQGAN."""

from __future__ import annotations

from flax import nnx

from liquid_jax.data.tokenizers.base import vocab_layout
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.models.spec import TransformerSpec
from liquid_jax.models.transformer import Transformer
from liquid_jax.models.vqgan import VQGAN
from liquid_jax.models.vqgan_config import VQGANConfig

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
SPECIALS += ["<unused0>", "<unused1>", "<unused2>"]  # become <boi>, <eoi>, <unconditional>
WORDS = [f"w{i}" for i in range(31)]
TEXT_VOCAB = len(SPECIALS) + len(WORDS)  # 40
NUM_CODES = 64
CONTEXT = 96
# Downsample 4: 16x16-pixel images are 4x4 codes.
VQGAN_CONFIG = VQGANConfig(
    ch=32,
    ch_mult=(1, 2, 2),
    num_res_blocks=1,
    attn_resolutions=(),
    z_channels=16,
    embed_dim=16,
    n_embed=NUM_CODES,
    resolution=16,
)


def save_tokenizer(directory: str, words: list[str] = WORDS) -> None:
    import tokenizers
    import transformers

    model = tokenizers.models.WordLevel(
        {n: i for i, n in enumerate(SPECIALS + list(words))}, unk_token="<unk>"
    )
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    fast.save_pretrained(directory)


def tiny_spec(**kw) -> TransformerSpec:
    fields = dict(
        vocab_size=TEXT_VOCAB + NUM_CODES,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=1,
        head_dim=16,
        init_std=0.2,
        max_position_embeddings=CONTEXT,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    return TransformerSpec.for_family("gemma", **{**fields, **kw})


def make_assets(directory: str, seed: int = 0):
    """(model, layout, tokenizer, vqgan); the tokenizer files are written to ``directory``."""
    save_tokenizer(directory)
    tokenizer = load_tokenizer(directory)
    layout = vocab_layout(tokenizer, NUM_CODES)
    assert layout.text_vocab_size == TEXT_VOCAB and layout.boi_id == 6
    model = Transformer(tiny_spec(), rngs=nnx.Rngs(seed))
    # Initialised under jit: one compiled program instead of hundreds of eager ops.
    vqgan = nnx.jit(lambda: VQGAN(VQGAN_CONFIG, rngs=nnx.Rngs(seed)))()
    return model, layout, tokenizer, vqgan
