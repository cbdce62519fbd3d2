"""Tiny random HF causal LMs (no downloads) for parity tests, one per family variant."""

from __future__ import annotations

import numpy as np
import torch
import transformers

VOCAB = 300  # pads to 384: the padding columns are exercised too

_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=64,
    bos_token_id=2,
    eos_token_id=1,
    pad_token_id=0,
)

VARIANTS = {
    # MQA, head_dim independent of hidden / heads.
    "gemma": (
        transformers.GemmaConfig,
        transformers.GemmaForCausalLM,
        dict(num_key_value_heads=1, head_dim=32),
    ),
    # Sliding window (even layers) shorter than the sequences, both soft-caps active.
    "gemma2": (
        transformers.Gemma2Config,
        transformers.Gemma2ForCausalLM,
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
        transformers.Qwen2Config,
        transformers.Qwen2ForCausalLM,
        dict(num_key_value_heads=2, tie_word_embeddings=True),
    ),
    "qwen2_untied": (
        transformers.Qwen2Config,
        transformers.Qwen2ForCausalLM,
        dict(num_key_value_heads=2, tie_word_embeddings=False),
    ),
    # llama3 rope scaling with a short original context so that it changes frequencies.
    "llama_untied": (
        transformers.LlamaConfig,
        transformers.LlamaForCausalLM,
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
        transformers.LlamaConfig,
        transformers.LlamaForCausalLM,
        dict(num_key_value_heads=2, tie_word_embeddings=True, attention_bias=True),
    ),
}


def make_hf_model(variant: str, seed: int = 0):
    """A float32 eval-mode model with every weight random (norms and biases included)."""
    config_cls, model_cls, extra = VARIANTS[variant]
    config = config_cls(**{**_COMMON, **extra})
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    gemma_norm = variant.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.2 + (0.0 if gemma_norm else 1.0))
            else:
                p.copy_(torch.randn_like(p) * 0.15)
    return model


def hf_logits(model, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(tokens), dtype=torch.long)).logits.numpy()


def hf_greedy(model, prompt: np.ndarray, num_new: int) -> np.ndarray:
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


def save_word_tokenizer(directory: str, size: int, unused_slots: bool) -> None:
    """A word-level tokenizer of ``size`` tokens; Gemma's ``<unused0..2>`` at 7..9 if asked."""
    import tokenizers

    names = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start>", "<end>"]
    names += ["<unused0>", "<unused1>", "<unused2>"] if unused_slots else ["x", "y", "z"]
    names += [f"w{i}" for i in range(size - len(names))]
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
