"""T2I sampling with CFG: our compiled sampler vs Liquid's reference loop in PyTorch.

    .venv/bin/python benchmarks/sampling.py [--images 4 --codes 256 --layers 4 --hidden 256]
    .venv/bin/python benchmarks/sampling.py --analysis   # liquid_v1_7b bytes per step
    .venv/bin/python benchmarks/sampling.py --analysis --quantize int8

Both sides hold the same weights (a random Gemma-shaped HF model, converted with
``load_hf``), run float32 on this machine's CPU in one process, and do the same work:
prefill ``images`` conditional + ``images`` unconditional left-padded prompts as one
batch, then ``codes`` steps of guided sampling (scale 7, temperature 0.99, top-k 4096,
top-p 0.96, text logits masked) over the KV cache.

The reference loop is what Liquid's T2I evaluation script does: transformers forward
passes with ``past_key_values``, the batch split into cond / uncond halves, the
``top_k_top_p_filtering`` + ``torch.multinomial`` of its ``sample``, one Python iteration
per token. Ours is ``Decoder.generate``: one prefill and one ``lax.while_loop``.
Also reported: greedy text generation tokens/s, ours vs ``transformers.generate``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import decode_analysis  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from common import gemma_pair, report, time_call  # noqa: E402

from liquid_jax.data.vocab import VocabLayout  # noqa: E402
from liquid_jax.sample.decode_loop import Decoder, DecodeSpec, SamplingParams  # noqa: E402
from liquid_jax.sample.prompts import left_pad  # noqa: E402
from liquid_jax.sample.t2i import t2i_decode_spec  # noqa: E402

TEXT_VOCAB, BOS, EOS, PAD, BOI, EOI, UNCOND = 1000, 2, 1, 0, 7, 8, 9


def reference_filter(logits, text_vocab, top_k, top_p):
    """Liquid's ``top_k_top_p_filtering`` (T2I evaluation script), logits [B, V]."""
    logits[:, :text_vocab] = -float("inf")  # sample image codes only
    if top_k > 0:
        top_k = min(top_k, logits.size(-1))
        logits[logits < torch.topk(logits, top_k)[0][..., -1, None]] = -float("inf")
    if top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cumulative > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = 0
        logits[remove.scatter(1, sorted_indices, remove)] = -float("inf")
    return logits


def reference_t2i(hf, input_ids, attention_mask, codes, scale, temperature, top_k, top_p):
    """Liquid's loop: cond rows first, then uncond rows; one forward per token."""
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    cache = transformers.DynamicCache()
    tokens, mask, pred = input_ids, attention_mask, []
    with torch.no_grad():
        for _ in range(codes):
            out = hf(
                input_ids=tokens,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
            )
            logits = out.logits[:, -1, :]
            cond, uncond = torch.split(logits, len(logits) // 2, dim=0)
            guided = uncond + (cond - uncond) * scale
            guided = reference_filter(guided / max(temperature, 1e-5), TEXT_VOCAB, top_k, top_p)
            half = torch.multinomial(F.softmax(guided, dim=-1), num_samples=1)
            pred.append(half)
            tokens = torch.cat([half, half])
            mask = torch.cat([mask, torch.ones_like(tokens)], dim=-1)
            positions = positions[:, -1:] + 1
    return torch.cat(pred, dim=1) - TEXT_VOCAB


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--codes", type=int, default=256, help="a square number (h = w)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--image_codes", type=int, default=1024)
    p.add_argument("--text_tokens", type=int, default=128)
    p.add_argument(
        "--analysis",
        action="store_true",
        help="bytes per decoding step at liquid_v1_7b vs the floor (no run)",
    )
    p.add_argument(
        "--quantize", choices=["int8"], default=None, help="--analysis: weight-only int8"
    )
    args = p.parse_args()
    if args.analysis:
        decode_analysis.main(quantize=args.quantize)
        return
    torch.set_num_threads(os.cpu_count() or 1)
    side = int(round(args.codes**0.5))
    grid = (side, args.codes // side)

    vocab = TEXT_VOCAB + args.image_codes
    hf, model = gemma_pair(
        vocab, args.hidden, args.layers, max_position_embeddings=1024,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, attn_implementation="eager",
    )  # fmt: skip
    layout = VocabLayout(TEXT_VOCAB, args.image_codes, BOI, EOI, UNCOND, BOS, EOS, PAD)

    rng = np.random.default_rng(0)
    conds = [
        np.asarray([BOS, *rng.integers(10, TEXT_VOCAB, int(n)), BOI], np.int32)
        for n in rng.integers(12, 24, args.images)
    ]
    uncond = np.asarray([BOS, UNCOND, BOI], np.int32)

    # Ours: interleaved (cond, uncond) rows, one compiled loop.
    spec, params = t2i_decode_spec(layout, grid)
    decoder = Decoder(model)
    batch = left_pad([r for c in conds for r in (c, uncond)], PAD)
    ids = np.arange(args.images)
    run_ours = lambda: decoder.generate(batch, ids, 0, spec, params)
    codes_ours = run_ours().tokens - TEXT_VOCAB
    assert codes_ours.shape == (args.images, args.codes) and codes_ours.min() >= 0

    # Reference: cond rows then uncond rows, left padded with an attention mask.
    rows = conds + [uncond] * args.images
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    run_ref = lambda: reference_t2i(hf, input_ids, mask, args.codes, 7.0, 0.99, 4096, 0.96)
    codes_ref = run_ref()
    assert codes_ref.shape == (args.images, args.codes) and int(codes_ref.min()) >= 0

    t_ours = time_call(run_ours, warmup=1, repeats=3)
    t_ref = time_call(run_ref, warmup=1, repeats=3)
    n = args.images * args.codes
    report(
        f"T2I with CFG: {args.images} images x {args.codes} codes ({grid[0]}x{grid[1]}), "
        f"Gemma-shaped {args.layers}L d={args.hidden} V={TEXT_VOCAB}+{args.image_codes}, "
        f"{jax.devices()[0].platform}",
        [
            ("liquid_jax (compiled loop)", t_ours, f"{n / t_ours:,.0f} codes/s"),
            ("reference (torch loop)", t_ref, f"{n / t_ref:,.0f} codes/s"),
        ],
        ours="liquid_jax (compiled loop)",
        peer="reference (torch loop)",
    )

    # Greedy text: ours vs transformers.generate, same prompts (no early stop).
    prompts = [c[:-1] for c in conds]
    text_spec = DecodeSpec(args.text_tokens, (0, TEXT_VOCAB), greedy=True)
    text_batch = left_pad(prompts, PAD)
    run_text = lambda: decoder.generate(text_batch, ids, 0, text_spec, SamplingParams.of())
    width = max(len(r) for r in prompts)
    tids = torch.full((len(prompts), width), PAD, dtype=torch.long)
    tmask = torch.zeros_like(tids)
    for i, r in enumerate(prompts):
        tids[i, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
        tmask[i, width - len(r) :] = 1
    hf.generation_config.eos_token_id = None

    def run_hf_text():
        with torch.no_grad():
            return hf.generate(
                tids,
                attention_mask=tmask,
                do_sample=False,
                max_new_tokens=args.text_tokens,
                min_new_tokens=args.text_tokens,
                pad_token_id=PAD,
            )

    t_text = time_call(run_text, warmup=1, repeats=3)
    t_hf_text = time_call(run_hf_text, warmup=1, repeats=3)
    n = args.images * args.text_tokens
    report(
        f"greedy text: {args.images} rows x {args.text_tokens} tokens",
        [
            ("liquid_jax (compiled loop)", t_text, f"{n / t_text:,.0f} tokens/s"),
            ("transformers.generate", t_hf_text, f"{n / t_hf_text:,.0f} tokens/s"),
        ],
        ours="liquid_jax (compiled loop)",
        peer="transformers.generate",
    )


if __name__ == "__main__":
    main()
