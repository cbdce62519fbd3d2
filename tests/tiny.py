"""Every tiny fixture the tests build, with no downloads: transformer specs per family,
VQGAN configs, tokenizers (a character one, a trained SentencePiece one, word-level HF
ones), the Liquid sampling assets and random HF causal LMs with their checkpoints.

Import it as ``from tests.tiny import ...`` (the repository root is on ``sys.path``).
torch and transformers are imported inside the functions that need them: they are a
heavy optional extra, and ``tests/conftest.py`` marks a test module that imports them at
its top as a ``torch`` test. The expensive builders (training a SentencePiece model,
writing an HF checkpoint) are called once per session by the fixtures in the conftests.
"""

from __future__ import annotations

import functools
import os
import string

import numpy as np
from flax import nnx

from liquid_jax.data.shapes.examples import text_record
from liquid_jax.data.tokenizers.base import vocab_layout
from liquid_jax.data.tokenizers.load import load_tokenizer
from liquid_jax.data.tokenizers.sp_train import train_sentencepiece
from liquid_jax.models.spec import TransformerSpec
from liquid_jax.models.transformer import Transformer
from liquid_jax.models.vqgan import VQGAN
from liquid_jax.models.vqgan_config import VQGANConfig

# -- transformer specs ----------------------------------------------------------------

TRANSFORMER = dict(
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    init_std=0.2,
)
# A sliding window shorter than the test sequences and both soft-caps active.
GEMMA2_EXTRAS = dict(sliding_window=3, attn_logit_softcap=5.0, final_logit_softcap=8.0)


def tiny_spec(family: str = "gemma2", **kw) -> TransformerSpec:
    """``TRANSFORMER`` over a 300-token vocabulary (padded to 384), plus ``GEMMA2_EXTRAS``
    for Gemma2; ``kw`` overrides any field."""
    fields = dict(TRANSFORMER, vocab_size=300)
    if family == "gemma2":
        fields.update(GEMMA2_EXTRAS)
    return TransformerSpec.for_family(family, **{**fields, **kw})


# -- VQGAN configs --------------------------------------------------------------------

# Downsample 2, 64 codes (the ``model`` fields of a VQGAN config, as a dict).
VQGAN_FIELDS = dict(
    ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=16, embed_dim=16, n_embed=64
)


def tiny_vqgan_config(**kw) -> VQGANConfig:
    """``VQGAN_FIELDS`` at 32-pixel resolution, no attention; ``kw`` overrides."""
    fields = dict(VQGAN_FIELDS, resolution=32, attn_resolutions=())
    return VQGANConfig(**{**fields, **kw})


# -- tokenizers -----------------------------------------------------------------------


class CharTokenizer:
    """A ``TextTokenizer`` with one id per printable character, for token-exact tests.

    Ids: 0 <pad>, 1 <eos>, 2 <bos>, 3 <boi>, 4 <eoi>, 5 <unconditional>,
    6 <start_of_turn>, 7 <end_of_turn>, then ``8 + string.printable.index(c)``.
    Special names are not parsed from text (the formats place them by id).
    """

    SPECIALS = (
        "<pad>",
        "<eos>",
        "<bos>",
        "<boi>",
        "<eoi>",
        "<unconditional>",
        "<start_of_turn>",
        "<end_of_turn>",
    )
    CHARS = string.printable
    pad_id, eos_id, bos_id, boi_id, eoi_id, unconditional_id = range(6)
    vocab_size = len(SPECIALS) + len(CHARS)
    name = "CharTokenizer"

    def encode(self, text):
        return [len(self.SPECIALS) + self.CHARS.index(c) for c in text]

    def decode(self, ids):
        return "".join(
            self.CHARS[i - len(self.SPECIALS)] if i >= len(self.SPECIALS) else self.SPECIALS[i]
            for i in ids
            if i not in (self.pad_id, self.bos_id, self.eos_id)
        )

    def token_to_id(self, token):
        return self.SPECIALS.index(token) if token in self.SPECIALS else None

    def id_to_token(self, token_id):
        return self.decode([token_id])

    def save(self, directory):
        raise NotImplementedError


def shapes_corpus() -> list[str]:
    """Deterministic training text: shapes-world documents plus a little odd text."""
    docs = [text_record(0, "train", i)["text"] for i in range(1500)]
    rng = np.random.default_rng(0)
    extra = ["".join(rng.choice(list(string.printable), size=40)) for _ in range(50)]
    return docs + extra


def save_sentencepiece(directory: str, corpus: list[str]) -> None:
    """A 400-piece Gemma-style SentencePiece tokenizer trained on ``corpus`` (seconds:
    call it from a session-scoped fixture)."""
    train_sentencepiece(corpus, 400, directory)


def _save_word_level(directory: str, names: list[str]) -> None:
    """An HF fast tokenizer with one id per whitespace-separated name, in order."""
    import tokenizers
    import transformers  # deferred: the torch extra

    model = tokenizers.models.WordLevel({n: i for i, n in enumerate(names)}, unk_token="<unk>")
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


def save_word_tokenizer(directory: str, size: int, unused_slots: bool) -> None:
    """A word-level tokenizer of ``size`` tokens; Gemma's ``<unused0..2>`` at 7..9 if asked."""
    names = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start>", "<end>"]
    names += ["<unused0>", "<unused1>", "<unused2>"] if unused_slots else ["x", "y", "z"]
    names += [f"w{i}" for i in range(size - len(names))]
    _save_word_level(directory, names)


# -- Liquid sampling assets: text + 64 image codes, a tiny VQGAN -------------------------

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
SPECIALS += ["<unused0>", "<unused1>", "<unused2>"]  # become <boi>, <eoi>, <unconditional>
WORDS = [f"w{i}" for i in range(31)]
TEXT_VOCAB = len(SPECIALS) + len(WORDS)  # 40
NUM_CODES = 64
CONTEXT = 96
# Downsample 4: 16x16-pixel images are 4x4 codes.
SAMPLING_VQGAN = tiny_vqgan_config(ch_mult=(1, 2, 2), n_embed=NUM_CODES, resolution=16)


def save_sampling_tokenizer(directory: str, words: list[str] = WORDS) -> None:
    """Word-level, with Gemma's special and chat tokens first (``SPECIALS``)."""
    _save_word_level(directory, SPECIALS + list(words))


def sampling_spec(**kw) -> TransformerSpec:
    """A 2-layer Gemma (MQA) over the sampling assets' text + image-code vocabulary."""
    fields = dict(
        vocab_size=TEXT_VOCAB + NUM_CODES,
        num_kv_heads=1,
        max_position_embeddings=CONTEXT,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    return tiny_spec("gemma", **{**fields, **kw})


def make_sampling_assets(directory: str, seed: int = 0):
    """(model, layout, tokenizer, vqgan); the tokenizer files are written to ``directory``."""
    save_sampling_tokenizer(directory)
    tokenizer = load_tokenizer(directory)
    layout = vocab_layout(tokenizer, NUM_CODES)
    assert layout.text_vocab_size == TEXT_VOCAB and layout.boi_id == 6
    model = Transformer(sampling_spec(), rngs=nnx.Rngs(seed))
    # Initialised under jit: one compiled program instead of hundreds of eager ops.
    vqgan = nnx.jit(lambda: VQGAN(SAMPLING_VQGAN, rngs=nnx.Rngs(seed)))()
    return model, layout, tokenizer, vqgan


# -- random HF causal LMs (transformers + torch) ---------------------------------------

HF_VOCAB = 300  # pads to 384: the padding columns are exercised too

HF_COMMON = dict(
    vocab_size=HF_VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=64,
    bos_token_id=2,
    eos_token_id=1,
    pad_token_id=0,
)

# variant -> (transformers config class, model class, config fields beyond HF_COMMON);
# class names, so that this module does not import transformers.
HF_VARIANTS = {
    # MQA, head_dim independent of hidden / heads.
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(num_key_value_heads=1, head_dim=32)),
    # Sliding window (even layers) shorter than the sequences, both soft-caps active.
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        dict(
            num_hidden_layers=3,
            num_key_value_heads=2,
            head_dim=16,
            sliding_window=5,
            query_pre_attn_scalar=24,
            attn_logit_softcapping=3.0,
            final_logit_softcapping=4.0,
        ),
    ),
    "qwen2_tied": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(num_key_value_heads=2, tie_word_embeddings=True),
    ),
    "qwen2_untied": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(num_key_value_heads=2, tie_word_embeddings=False),
    ),
    # llama3 rope scaling with a short original context so that it changes frequencies.
    "llama_untied": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            num_key_value_heads=2,
            tie_word_embeddings=False,
            rope_parameters=dict(
                rope_type="llama3",
                rope_theta=500000.0,
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=16,
            ),
        ),
    ),
    "llama_tied_bias": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(num_key_value_heads=2, tie_word_embeddings=True, attention_bias=True),
    ),
}


def make_hf_model(variant: str, seed: int = 0):
    """A float32 eval-mode model with every weight random (norms and biases included)."""
    import torch  # deferred: the torch extra
    import transformers

    config_name, model_name, extra = HF_VARIANTS[variant]
    config = getattr(transformers, config_name)(**{**HF_COMMON, **extra})
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    gemma_norm = variant.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.2 + (0.0 if gemma_norm else 1.0))
            else:
                p.copy_(torch.randn_like(p) * 0.15)
    return model


def hf_checkpoints(root: str):
    """``get(variant) -> (HF model, its save_pretrained directory under root)``, each
    variant built and written once (the ``hf_checkpoint`` session fixture)."""

    @functools.cache
    def get(variant: str):
        model = make_hf_model(variant)
        directory = os.path.join(root, variant)
        model.save_pretrained(directory)
        return model, directory

    return get


def hf_logits(model, tokens: np.ndarray) -> np.ndarray:
    import torch  # deferred: the torch extra

    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(tokens), dtype=torch.long)).logits.numpy()


def hf_greedy(model, prompt: np.ndarray, num_new: int) -> np.ndarray:
    import torch  # deferred: the torch extra

    model.generation_config.eos_token_id = None  # never stop early
    with torch.no_grad():
        out = model.generate(
            torch.as_tensor(np.asarray(prompt), dtype=torch.long),
            do_sample=False,
            max_new_tokens=num_new,
            pad_token_id=0,
            attention_mask=torch.ones(prompt.shape, dtype=torch.long),
        )
    return out[:, prompt.shape[1] :].numpy()


# -- a checkpoint laid out like the released Liquid model (transformers + torch) --------

# Gemma's ids: <unused0..2> (Liquid's <boi>, <eoi>, <unconditional>) are 7, 8, 9.
RELEASE_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>",
                    "<end_of_turn>", "<unused0>", "<unused1>", "<unused2>"]  # fmt: skip
RELEASE_WORDS = ["The", "caption", "of", "this", "image", "is:", "user", "model"]
RELEASE_WORDS += [f"w{i}" for i in range(22)]
RELEASE_TEXT = len(RELEASE_SPECIALS) + len(RELEASE_WORDS)  # 40 = len(tokenizer)
RELEASE_CODES = 64
# Downsample 4 (16x16-pixel images are 4x4 codes), no attention levels, as Chameleon's.
RELEASE_VQGAN = tiny_vqgan_config(ch_mult=(1, 2, 2), n_embed=RELEASE_CODES, resolution=16)


def random_taming_state_dict(config: VQGANConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random taming VQGAN weights at scales that keep activations O(1)."""
    from liquid_jax.export.vqgan_torch import taming_shapes

    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in taming_shapes(config).items():
        if key.endswith(".bias"):
            x = 0.1 * rng.standard_normal(shape)
        elif len(shape) == 1:  # GroupNorm scale
            x = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) == 2:  # codebook, near the latents' scale: many codes in use
            x = 0.3 * rng.standard_normal(shape)
        else:  # conv, fan-in scaled
            x = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        out[key] = x.astype(np.float32)
    return out


def save_taming_vqgan(directory: str, state_dict: dict, config: VQGANConfig) -> None:
    """``vqgan.yaml`` + ``vqgan.ckpt`` as Chameleon ships them, written with yaml and
    torch directly (not through liquid_jax's writer)."""
    import torch  # deferred: the torch extra
    import yaml

    os.makedirs(directory, exist_ok=True)
    ddconfig = dict(double_z=False, z_channels=config.z_channels, resolution=config.resolution,
                    in_channels=3, out_ch=3, ch=config.ch, ch_mult=list(config.ch_mult),
                    num_res_blocks=config.num_res_blocks,
                    attn_resolutions=list(config.attn_resolutions), dropout=0.0)  # fmt: skip
    loss = dict(target="taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
                params=dict(disc_conditional=False, disc_in_channels=3, disc_start=0))  # fmt: skip
    params = dict(embed_dim=config.embed_dim, n_embed=config.n_embed, ddconfig=ddconfig,
                  lossconfig=loss)  # fmt: skip
    cfg = dict(model=dict(base_learning_rate=4.5e-6, target="taming.models.vqgan.VQModel",
                          params=params))  # fmt: skip
    with open(os.path.join(directory, "vqgan.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()}
    torch.save({"state_dict": tensors}, os.path.join(directory, "vqgan.ckpt"))


def save_release_checkpoint(directory: str, seed: int = 0):
    """A tiny ``Liquid_V1_7B`` as downloaded: a random ``GemmaForCausalLM`` (MHA, tied
    embeddings, ``RELEASE_TEXT + RELEASE_CODES`` rows) by ``save_pretrained`` with a
    Gemma-style tokenizer holding ``<unused0..2>`` and no ``liquid_vocab.json``; beside
    it (``directory/chameleon``) a taming VQGAN as ``vqgan.yaml`` + ``vqgan.ckpt``.

    Returns (the HF model, the VQGAN's taming state dict, the model's directory, the
    VQGAN's directory)."""
    import torch  # deferred: the torch extra
    import transformers

    config = transformers.GemmaConfig(
        vocab_size=RELEASE_TEXT + RELEASE_CODES, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, head_dim=16,
        max_position_embeddings=128, bos_token_id=2, eos_token_id=1, pad_token_id=0,
        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
    )  # fmt: skip
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.GemmaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.2 if "norm" in name else 0.15
            p.copy_(torch.randn_like(p) * scale)
    model_dir = os.path.join(directory, "Liquid_V1_tiny")
    model.save_pretrained(model_dir)
    _save_word_level(model_dir, RELEASE_SPECIALS + RELEASE_WORDS)
    state_dict = random_taming_state_dict(RELEASE_VQGAN, seed)
    vqgan_dir = os.path.join(directory, "chameleon")
    save_taming_vqgan(vqgan_dir, state_dict, RELEASE_VQGAN)
    return model, state_dict, model_dir, vqgan_dir
