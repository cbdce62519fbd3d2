"""``Sampler``: the notebook-friendly entry point for T2I, I2T / VQA and text.

    sampler = Sampler(model, layout, tokenizer, vqgan)          # or load_for_sampling(dir)
    out = sampler.t2i(["a red circle"], num_samples=4)          # out.images: uint8[4, H, W, 3]
    sampler.i2t(["cat.png"])                                    # ["a cat on a mat"]
    sampler.i2t(["cat.png"], "What animal is this?")            # VQA (chat turn)
    sampler.chat([{"role": "user", "content": "Hi", "image": "cat.png"}])  # multi-turn
    sampler.text(["Once upon a time"], max_new_tokens=64)

Every input is checked (empty prompts, unreadable images, prompts or grids beyond the
model's context) before anything is compiled or run. Samples are run in fixed-size
batches (the last one padded) so one compiled loop serves them all, and sample ``i``
always draws from stream ``i`` of ``seed``: results do not depend on ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from liquid_jax.data.formats import DOWNSAMPLE
from liquid_jax.data.images import to_uint8
from liquid_jax.data.tokenizers.base import TextTokenizer
from liquid_jax.data.vocab import VocabLayout
from liquid_jax.errors import InputError
from liquid_jax.models.transformer import Transformer
from liquid_jax.models.vqgan import VQGAN, check_image_shape
from liquid_jax.models.vqgan_apply import decode_codes, encode_images
from liquid_jax.sample import i2t as i2t_lib
from liquid_jax.sample import t2i as t2i_lib
from liquid_jax.sample import text as text_lib
from liquid_jax.sample.decode_loop import Decoder, DecodeSpec, SamplingParams
from liquid_jax.sample.prompts import check_fits, check_text, left_pad, padded_length

Progress = Callable[[int, int], None]


class Sampler:
    """Generates with a Liquid ``Transformer`` (and its VQGAN for images).

    Args:
      model: the language model (vocabulary = text + image codes).
      vocab_layout: where text, special tokens and image codes live.
      tokenizer: the text tokenizer.
      vqgan: the image tokenizer; needed to return images (T2I) and to read them (I2T).
      mesh: shard the model and split batches over this mesh.
      context: the longest sequence allowed (default: the model's
        ``max_position_embeddings``).
      size_prefix: T2I prompts carry "Image Size: Width is W Height is H." (models
        trained multi-resolution).
      batch_size: samples per compiled batch (CFG doubles the rows).
      quantize: "int8": decode with weight-only int8 matmul weights (``quantize.py``;
        ``model`` itself is left as it is). None: the model's own weights.

    The sampler holds one copy of the weights, in the form decoding reads them
    (``decode_loop.Decoder``, a ``DecodeModel``), made from ``model`` at construction
    (cast and quantized a layer at a time); ``model`` is not kept.
    """

    def __init__(
        self,
        model: Transformer,
        vocab_layout: VocabLayout,
        tokenizer: TextTokenizer,
        vqgan: VQGAN | None = None,
        *,
        mesh=None,
        context: int | None = None,
        size_prefix: bool = False,
        batch_size: int = 8,
        quantize: str | None = None,
    ):
        if vocab_layout.vocab_size > model.spec.vocab_size:
            raise InputError(
                f"sampler: the vocabulary layout has {vocab_layout.vocab_size} tokens but the "
                f"model only {model.spec.vocab_size}"
            )
        if vqgan is not None and vqgan.config.n_embed != vocab_layout.num_image_codes:
            raise InputError(
                f"sampler: the VQGAN has {vqgan.config.n_embed} codes but the vocabulary "
                f"layout {vocab_layout.num_image_codes}"
            )
        self.layout, self.tokenizer, self.vqgan = vocab_layout, tokenizer, vqgan
        # The head in blocks at the layout's edges: T2I reads the image codes' columns,
        # text the text columns, each in place.
        edges = (vocab_layout.text_vocab_size, vocab_layout.image_offset, vocab_layout.vocab_size)
        self.decoder = Decoder(model, mesh, splits=edges, quantize=quantize)
        self.context = int(context or model.spec.max_position_embeddings)
        self.size_prefix = size_prefix
        self.batch_size = int(batch_size)

    @property
    def downsample(self) -> int:
        return self.vqgan.downsample_factor if self.vqgan is not None else DOWNSAMPLE

    def default_grid(self) -> tuple[int, int]:
        """The VQGAN's training resolution in codes (32x32 for Chameleon's at 512)."""
        if self.vqgan is None:
            raise InputError("t2i: no VQGAN loaded, so pass grid=(h, w) explicitly")
        side = self.vqgan.config.resolution // self.downsample
        return side, side

    # -- running -----------------------------------------------------------------------

    def _run(
        self,
        rows: Sequence[list[np.ndarray]],
        sample_ids: np.ndarray,
        seed: int,
        spec: DecodeSpec,
        params: SamplingParams,
        batch_size: int | None,
        chunk: int | None,
        progress: Progress | None,
    ) -> np.ndarray:
        """rows: per sample, its prompt rows -> int32[S, max_new_tokens] drawn ids."""
        size = max(1, min(int(batch_size or self.batch_size), len(rows)))
        length = padded_length([len(r) for sample in rows for r in sample])
        n, total = spec.max_new_tokens, -(-len(rows) // size) * spec.max_new_tokens
        out = []
        for b, first in enumerate(range(0, len(rows), size)):
            part, ids = list(rows[first : first + size]), list(sample_ids[first : first + size])
            real = len(part)
            part += [part[-1]] * (size - real)  # same shape for every batch: one compile
            ids += [ids[-1]] * (size - real)
            batch = left_pad([r for sample in part for r in sample], self.layout.pad_id, length)
            report = None if progress is None else (lambda s, _, b=b: progress(b * n + s, total))
            gen = self.decoder.generate(
                batch, np.asarray(ids), seed, spec, params, chunk=chunk, progress=report
            )
            out.append(gen.tokens[:real])
        return np.concatenate(out)

    # -- tasks -------------------------------------------------------------------------

    def t2i(
        self,
        prompts: str | Sequence[str],
        *,
        num_samples: int = 1,
        grid=None,
        cfg_scale: float | None = t2i_lib.CFG_SCALE,
        temperature: float = t2i_lib.TEMPERATURE,
        top_k: int = t2i_lib.TOP_K,
        top_p: float = t2i_lib.TOP_P,
        cfg_min_p: float = 0.0,
        seed: int = 0,
        instruction: str = t2i_lib.INSTRUCTION,
        batch_size: int | None = None,
        decode: bool = True,
        chunk: int | None = None,
        progress: Progress | None = None,
    ) -> t2i_lib.T2IResult:
        """Images for captions: ``num_samples`` per prompt, sample ``p * num_samples + s``.

        ``grid``: (h, w) codes, "HxW" or N (default ``default_grid()``); the images are
        ``h*f x w*f`` pixels. Defaults are Liquid's: guidance 7, temperature 0.99, top-k
        4096 (clamped to the codebook), top-p 0.96. ``cfg_scale`` None or 1: no guidance.
        ``cfg_min_p`` > 0: guidance only among codes the conditional branch finds
        plausible (``filters.guide``); 0 is the reference's plain guidance.
        """
        prompts = check_text(prompts, "t2i")
        if int(num_samples) < 1:
            raise InputError(f"t2i: num_samples={num_samples} must be >= 1")
        grid = t2i_lib.parse_grid(grid) if grid is not None else self.default_grid()
        f = self.downsample
        image_size = (grid[1] * f, grid[0] * f) if self.size_prefix else None
        cfg = t2i_lib.uses_cfg(cfg_scale)
        per_prompt = [
            t2i_lib.t2i_rows(
                self.tokenizer,
                self.layout,
                p,
                cfg=cfg,
                instruction=instruction,
                image_size=image_size,
            )
            for p in prompts
        ]
        num_codes = grid[0] * grid[1]
        what = f"the {grid[0]}x{grid[1]} grid ({num_codes} codes)"
        # The conditional row is the longer one (it holds the caption).
        check_fits([rows[0] for rows in per_prompt], num_codes, self.context, "t2i", what)
        spec, params = t2i_lib.t2i_decode_spec(
            self.layout,
            grid,
            cfg_scale=cfg_scale,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            cfg_min_p=cfg_min_p,
        )
        rows = [rows for rows in per_prompt for _ in range(int(num_samples))]
        ids = np.arange(len(rows))
        tokens = self._run(rows, ids, seed, spec, params, batch_size, chunk, progress)
        codes = t2i_lib.codes_from_tokens(self.layout, tokens, grid)
        images = None
        if decode and self.vqgan is not None:
            images = to_uint8(decode_codes(self.vqgan, codes, self.decoder.mesh))
        captions = [p for p in prompts for _ in range(int(num_samples))]
        return t2i_lib.T2IResult(codes=codes, images=images, prompts=captions, sample_ids=ids)

    def i2t(
        self,
        images,
        prompts: str | Sequence[str | None] | None = None,
        *,
        max_new_tokens: int = text_lib.MAX_NEW_TOKENS,
        image_size: int | tuple[int, int] | None = None,
        batch_size: int | None = None,
        chunk: int | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Captions (``prompts`` None) or answers to questions about ``images`` (paths,
        PIL images, uint8 arrays or float arrays in [-1, 1]); greedy, one per image.

        ``image_size``: int or (width, height) files are cropped to (default: the VQGAN's
        resolution, square).
        """
        if self.vqgan is None:
            raise InputError("i2t: no VQGAN loaded to encode the images")
        images = i2t_lib.as_image_list(images)
        if not images:
            raise InputError("i2t: no images given")
        questions = i2t_lib.questions_for(prompts, len(images))
        size = image_size or self.vqgan.config.resolution
        pixels = [i2t_lib.load_pixels(img, size, i) for i, img in enumerate(images)]
        shapes = {p.shape for p in pixels}
        if len(shapes) > 1:
            raise InputError(f"i2t: images must share one size, got {sorted(shapes)}")
        check_image_shape((len(pixels), *pixels[0].shape), self.vqgan.config)
        f = self.downsample
        grid = (pixels[0].shape[0] // f, pixels[0].shape[1] // f)
        # Prompt lengths do not depend on the code values: check them before encoding.
        zeros = np.zeros(grid, np.int32)
        stops = i2t_lib.i2t_stop_ids(self.tokenizer, self.layout, questions)
        draft = [i2t_lib.i2t_rows(self.tokenizer, self.layout, zeros, q) for q in questions]
        check_fits(draft, int(max_new_tokens), self.context, "i2t")
        spec, params = text_lib.text_decode_spec(self.layout, stops, max_new_tokens=max_new_tokens)
        codes = np.asarray(encode_images(self.vqgan, np.stack(pixels), self.decoder.mesh))
        rows = [
            [i2t_lib.i2t_rows(self.tokenizer, self.layout, c, q)] for c, q in zip(codes, questions)
        ]
        ids = np.arange(len(rows))
        tokens = self._run(rows, ids, 0, spec, params, batch_size, chunk, progress)
        return text_lib.decode_rows(self.tokenizer, tokens, stops)

    def text(
        self,
        prompts: str | Sequence[str],
        *,
        max_new_tokens: int = text_lib.MAX_NEW_TOKENS,
        chat: bool = False,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        num_samples: int = 1,
        batch_size: int | None = None,
        chunk: int | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Continuations of ``prompts`` (or chat replies with ``chat``): greedy unless
        ``temperature > 0``; ``num_samples`` per prompt, in prompt order."""
        prompts = check_text(prompts, "text")
        if int(num_samples) < 1:
            raise InputError(f"text: num_samples={num_samples} must be >= 1")
        stops = text_lib.stop_ids(self.tokenizer, self.layout, chat)
        encoded = [text_lib.text_prompt(self.tokenizer, self.layout, p, chat=chat) for p in prompts]
        return self._continue(
            encoded, stops, "text", int(num_samples), max_new_tokens, temperature, top_k,
            top_p, seed, batch_size, chunk, progress,
        )  # fmt: skip

    def chat(
        self,
        conversations: Sequence[dict] | Sequence[Sequence[dict]],
        *,
        max_new_tokens: int = text_lib.MAX_NEW_TOKENS,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        image_size: int | tuple[int, int] | None = None,
        batch_size: int | None = None,
        chunk: int | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """The model's next turn in each conversation (one, or a list of them).

        A conversation is a list of ``{"role": "system" | "user" | "assistant",
        "content": str}``; a message may carry ``"image"`` (a path, PIL image or array,
        read as in ``i2t``), shown as ``<boi>{codes}<eoi>`` before its text. Rendered
        with the tokenizer's chat template (``text.chat_ids``); greedy unless
        ``temperature > 0``.
        """
        if conversations and isinstance(conversations[0], dict):
            conversations = [conversations]
        if not conversations:
            raise InputError("chat: no conversations given")
        encoded = []
        for c, conversation in enumerate(conversations):
            messages = [
                {**m, "image": self._image_codes(m["image"], image_size, f"{c}.{i}")}
                if isinstance(m, dict) and m.get("image") is not None
                else m
                for i, m in enumerate(conversation)
            ]
            encoded.append(text_lib.chat_ids(self.tokenizer, self.layout, messages))
        stops = text_lib.chat_stop_ids(self.tokenizer, self.layout)
        return self._continue(
            encoded, stops, "chat", 1, max_new_tokens, temperature, top_k, top_p, seed,
            batch_size, chunk, progress,
        )  # fmt: skip

    def _continue(
        self, encoded, stops, what, num_samples, max_new_tokens, temperature, top_k, top_p,
        seed, batch_size, chunk, progress,
    ) -> list[str]:  # fmt: skip
        """Text continuations of the token lists ``encoded`` (``num_samples`` each, in
        order) until one of ``stops``; ``what`` names the caller in errors."""
        check_fits(encoded, int(max_new_tokens), self.context, what)
        spec, params = text_lib.text_decode_spec(
            self.layout,
            stops,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
        )
        rows = [[e] for e in encoded for _ in range(num_samples)]
        tokens = self._run(rows, np.arange(len(rows)), seed, spec, params, batch_size, chunk,
                           progress)  # fmt: skip
        return text_lib.decode_rows(self.tokenizer, tokens, stops)

    def _image_codes(self, image, image_size, where: str) -> np.ndarray:
        """One image (as ``i2t`` reads them) -> its codes int32[h, w]."""
        if self.vqgan is None:
            raise InputError(f"chat: message {where} has an image but no VQGAN is loaded")
        size = image_size or self.vqgan.config.resolution
        pixels = i2t_lib.load_pixels(image, size)
        check_image_shape((1, *pixels.shape), self.vqgan.config)
        return np.asarray(encode_images(self.vqgan, pixels[None], self.decoder.mesh))[0]
