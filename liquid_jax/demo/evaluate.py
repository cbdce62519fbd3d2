"""The demo's evaluation stage: everything judged on held-out test captions and images.

- Probe: ``evals.probe`` trained on the train split's ground-truth images; its accuracy
  on real test images (with their true scenes) is reported first, since it judges T2I.
- T2I: one image per test caption, with and without classifier-free guidance, judged
  by the probe (colour, shape, size, position; ``evals.scoring.score_images``).
- I2T: greedy captions of test images, parsed and compared with the true scenes.
- Text: perplexity of the text corpus' test split under the base LM and under Liquid.
- Caption use: what each class of caption words (colour, shape, size, position) is worth
  to the Liquid model's teacher-forced code loss on test images (``evals.caption_use``),
  which says whether a missed attribute was never learned or lost in sampling.
- Learning curve: T2I and I2T accuracy at every kept Liquid checkpoint (``demo.curve``).

The headline accuracies are over single-shape test scenes; two-shape scenes are scored
apart (``*_pair_*`` metrics), a secondary measure.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import logging

from liquid_jax.data.images import to_uint8
from liquid_jax.data.shapes.captions import parse_caption, scene_attributes
from liquid_jax.data.shapes.scene import Scene
from liquid_jax.data.shapes.world import load_shapes_text, load_shapes_world
from liquid_jax.data.sources.specs import open_code_source
from liquid_jax.demo import visuals
from liquid_jax.demo.curve import learning_curve, plot_curve
from liquid_jax.demo.stages import Paths, test_images
from liquid_jax.evals.caption_use import caption_use
from liquid_jax.evals.probe import blurred_u8, train_probe
from liquid_jax.evals.scoring import score_captions, score_images
from liquid_jax.evals.text_ppl import perplexity
from liquid_jax.models.vqgan_apply import decode_codes, encode_images
from liquid_jax.progress import Progress
from liquid_jax.runs.trained_model import load_trained_model, record_sampling
from liquid_jax.sample.loading import load_for_sampling

ATTRS = ("color", "shape", "size", "position")


def _truth(records: list[dict]) -> list[dict]:
    return [scene_attributes(Scene.from_dict(r["attributes"])) for r in records]


def _split_ids(truth: list[dict]) -> tuple[list[int], list[int]]:
    """Indices of the single-shape scenes in ``truth`` and of the two-shape ones."""
    single = [i for i, t in enumerate(truth) if len(t["shapes"]) == 1]
    return single, [i for i, t in enumerate(truth) if len(t["shapes"]) > 1]


def _scored(score_fn, outputs, targets: list[dict]) -> tuple[dict, dict]:
    """(single-shape scores, two-shape scores) of ``score_fn(outputs, targets)``; outputs
    is a list (captions) or a dict of per-image arrays (probe predictions)."""

    def pick(ids):
        if isinstance(outputs, dict):
            return {k: v[ids] for k, v in outputs.items()}
        return [outputs[i] for i in ids]

    single, pair = (score_fn(pick(ids), [targets[i] for i in ids]) if ids else {}
                    for ids in _split_ids(targets))  # fmt: skip
    return single, pair


def _probe(config, paths: Paths, images: np.ndarray, truth: list[dict]):
    source = load_shapes_world(paths.world, "train")
    records = source.__getitems__(list(range(len(source))))
    train_images = np.stack([r["image"] for r in records])
    t = time.perf_counter()
    probe = train_probe(
        train_images,
        [r["attributes"] for r in records],
        steps=config.eval.probe_steps,
        batch_size=config.eval.probe_batch,
        seed=config.seed,
    )
    probe.save(os.path.join(paths.report, "probe.npz"))
    scores = _scored(score_images, probe.predict(images), truth)
    logging.info("probe on real test images (trained in %.0fs): %s", time.perf_counter() - t,
                 _rounded(scores))  # fmt: skip
    return probe, scores, {r["caption"] for r in records}


def _rounded(scores: tuple[dict, dict]) -> str:
    single, pair = scores
    show = lambda d: {k: round(v, 3) for k, v in d.items()}  # noqa: E731
    return f"one shape {show(single)}; two shapes {show(pair)}"


def _t2i(config, sampler, probe, prompts: list[str]):
    e, out = config.eval, {}
    targets = [parse_caption(p) for p in prompts]
    for name, scale in (("cfg", e.cfg_scale), ("nocfg", None)):
        t = time.perf_counter()
        result = sampler.t2i(
            prompts,
            cfg_scale=scale,
            temperature=e.temperature,
            top_k=e.top_k,
            top_p=e.top_p,
            cfg_min_p=e.cfg_min_p,
            seed=config.seed,
            progress=Progress(0, unit="token", label=f"T2I {name}"),
        )
        scores = _scored(score_images, probe.predict(result.images), targets)
        logging.info("T2I %s (scale %s, %.0fs): %s", name, scale, time.perf_counter() - t,
                     _rounded(scores))  # fmt: skip
        out[name] = (result.images, scores)
    return out


def _caption_use(config, paths: Paths, model, layout, tokenizer) -> dict:
    source = open_code_source(paths.code_spec("test"))
    records = source.__getitems__(list(range(min(config.eval.num_prompts, len(source)))))
    t = time.perf_counter()
    use = caption_use(model, layout, tokenizer, [r["caption"] for r in records],
                      np.stack([r["codes"] for r in records]), seed=config.seed)  # fmt: skip
    logging.info("caption use, nats per image of code loss (%.0fs): %s",
                 time.perf_counter() - t, {k: round(v, 2) for k, v in use.items()})  # fmt: skip
    return use


def _reconstruct(vqgan, images_u8: np.ndarray) -> np.ndarray:
    x = np.asarray(images_u8, np.float32) / 127.5 - 1.0
    return to_uint8(decode_codes(vqgan, encode_images(vqgan, x)))


def run_eval(config, paths: Paths) -> dict:
    e = config.eval
    os.makedirs(paths.report, exist_ok=True)
    n = max(e.num_prompts, e.num_images)
    images, records = test_images(config, paths, n)
    truth = _truth(records)
    probe, probe_scores, train_captions = _probe(config, paths, images, truth)

    # The learning curve first: it reads the kept checkpoints, the last being the final
    # model that the rest of this stage judges at full size, with the curve's sampler.
    ids = _split_ids(truth)[0][: e.curve_items]
    curve, sampler = learning_curve(
        config, paths, probe, [records[i]["caption"] for i in ids], images[ids],
        [truth[i] for i in ids],
    )  # fmt: skip
    plot_curve(curve, paths.report)
    if sampler is None:  # no checkpoint kept (else the curve's holds the final model)
        sampler = load_for_sampling(paths.liquid, batch_size=e.sample_batch)
    # The ceiling of T2I: what the probe says about real test images after a trip through
    # the VQGAN (a perfect generator can only draw what the codes can show).
    recon_scores = _scored(score_images, probe.predict(_reconstruct(sampler.vqgan, images)),
                           truth)  # fmt: skip
    logging.info("probe on VQGAN reconstructions of test images: %s", _rounded(recon_scores))
    # The probe's own robustness: a real image blurred by 1 px keeps its attributes, and a
    # decoded image is at least as soft.
    blur_scores = _scored(score_images, probe.predict(blurred_u8(images)), truth)
    logging.info("probe on blurred real test images: %s", _rounded(blur_scores))
    prompts = [r["caption"] for r in records[: e.num_prompts]]
    t2i = _t2i(config, sampler, probe, prompts)
    # What `liquid-jax sample --workdir LIQUID` then uses unless told otherwise (its own
    # defaults are the reference's, for a model trained at Liquid's scale).
    record_sampling(paths.liquid, "t2i", dict(cfg=e.cfg_scale, cfg_min_p=e.cfg_min_p,
                    temperature=e.temperature, top_k=e.top_k, top_p=e.top_p))  # fmt: skip

    t = time.perf_counter()
    i2t_images = images[: e.num_images]
    captions = sampler.i2t(list(i2t_images), max_new_tokens=e.max_caption_tokens,
                           progress=Progress(0, unit="token", label="I2T"))  # fmt: skip
    i2t = _scored(score_captions, captions, truth[: e.num_images])
    logging.info("I2T (%.0fs): %s", time.perf_counter() - t, _rounded(i2t))

    texts_src = load_shapes_text(paths.world, "test")
    texts = [texts_src[i]["text"] for i in range(min(e.num_text, len(texts_src)))]
    ppl, use = {}, {}
    for name, workdir in (("base", paths.base_lm), ("liquid", paths.liquid)):
        model, layout, tokenizer, _ = load_trained_model(workdir)
        ppl[name] = perplexity(model, tokenizer, layout, texts)
        if name == "liquid":
            use = _caption_use(config, paths, model, layout, tokenizer)
        logging.info("text perplexity, %s: %.3f over %d tokens", name, ppl[name]["ppl"],
                     int(ppl[name]["tokens"]))  # fmt: skip

    # Pictures and the raw samples for the report: single-shape prompts first, then the
    # two-shape ones, each grid with rows real / CFG / no CFG.
    k = e.grid_rows
    prompt_ids = _split_ids(truth[: len(prompts)])
    for kind, ids in zip(("", "_pair"), prompt_ids):
        ids = ids[:k]
        if ids:
            visuals.rows_grid([images[ids], t2i["cfg"][0][ids], t2i["nocfg"][0][ids]],
                              os.path.join(paths.report, f"t2i{kind}_grid.png"))  # fmt: skip
    i2t_single, _ = _split_ids(truth[: e.num_images])
    visuals.rows_grid([i2t_images[i2t_single[:k]]], os.path.join(paths.report, "i2t_grid.png"))
    single_prompts, pair_prompts = ([prompts[i] for i in ids] for ids in prompt_ids)
    samples = {
        "t2i_prompts": single_prompts,
        "t2i_pair_prompts": pair_prompts,
        "i2t": [{"truth": records[i]["caption"], "generated": captions[i]} for i in i2t_single],
    }
    with open(os.path.join(paths.report, "samples.json"), "w") as f:
        json.dump(samples, f, indent=1)

    def prefixed(prefix: str, scores: tuple[dict, dict], suffix: str = "") -> dict:
        single, pair = scores
        out = {f"{prefix}_{a}_acc{suffix}": v for a, v in single.items() if a != "parsed"}
        out.update({f"{prefix}_pair_{a}_acc{suffix}": v for a, v in pair.items()
                    if a != "parsed"})  # fmt: skip
        return out

    mean = lambda s: float(np.mean([s[a] for a in ATTRS]))  # noqa: E731
    return {
        **prefixed("probe", probe_scores),
        "probe_acc": probe_scores[0]["all"],
        **prefixed("probe_recon", recon_scores),
        **prefixed("probe_blur", blur_scores),
        **prefixed("t2i", t2i["cfg"][1]),
        **prefixed("t2i", t2i["nocfg"][1], "_nocfg"),
        "t2i_mean_acc": mean(t2i["cfg"][1][0]),
        "t2i_mean_acc_nocfg": mean(t2i["nocfg"][1][0]),
        **prefixed("i2t", i2t),
        "i2t_parsed_frac": i2t[0].get("parsed", 0.0),
        "t2i_code_nats_true_caption": use["true"],
        "t2i_code_nats_other_caption": use["shuffled"],
        "t2i_caption_gain_nats": use["caption"],
        **{f"t2i_caption_{k}_nats": use[k] for k in ("color", "shape", "size", "position")},
        "text_ppl_base": ppl["base"]["ppl"],
        "text_ppl_liquid": ppl["liquid"]["ppl"],
        "t2i_cfg_scale": e.cfg_scale,
        "t2i_cfg_min_p": e.cfg_min_p,
        "t2i_num_prompts": len(single_prompts),
        "t2i_num_pair_prompts": len(pair_prompts),
        "t2i_prompts_seen_in_train_frac": float(np.mean([p in train_captions for p in prompts])),
        "i2t_num_images": len(i2t_single),
        "text_num_docs": len(texts),
        "curve_steps": [r["step"] for r in curve],
        # T2I (CFG) / I2T mean accuracy of the four attributes at each of those steps.
        "curve_t2i_mean": [float(np.mean([r[f"t2i_{a}_acc"] for a in ATTRS])) for r in curve],
        "curve_i2t_mean": [float(np.mean([r[f"i2t_{a}_acc"] for a in ATTRS])) for r in curve],
    }
