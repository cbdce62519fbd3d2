"""``liquid-jax encode-images``: images -> VQ codes, offline, resumable, over devices and hosts.

    extract_codes(config, workdir)    # what the command runs; see configs/encode_shapes.py

For each split, the image-text source (any spec of ``sources.open_image_text_source``)
is cut into fixed chunks of the input, chunk ``k`` = records ``[k*N, (k+1)*N)``. Within a
chunk, process ``p`` of ``P`` takes the records ``i`` with ``i % P == p``, pre-processes
them (``images``: short side to the target and centre crop, or the nearest resolution
bucket), encodes them with the VQGAN in global batches split over the mesh's batch axes,
and writes them with ``CodeRecordWriter``. ``WORKDIR/codes/SPLIT/`` then holds::

    chunk000000-host000of001-00000-of-00001.array_record   # the chunk's code records
    chunk000000-host000of001.done.json   # written last: the chunk is finished
    encode_config.json                   # what the folder is made from (checked on resume)
    manifest.json                        # at the end: counts, skips by reason, images/s

A chunk counts as finished only once every host's ``.done.json`` exists (shards are
renamed from ``*.partial`` on close, then the marker is written). A restart keeps the
finished chunks, deletes whatever an interrupted chunk left and redoes it, so the records
of all shards in name order (``CodeRecordSource(WORKDIR/codes/SPLIT)``) are those of an
uninterrupted run. Bad records are skipped and counted by reason (``SkipCounter``); too
many raise ``TooManySkipsError``. ``WORKDIR`` and the source may be local or URLs
(``gs://``), read and written through ``fileio``. A train-vqgan workdir is read with
``load_vqgan_from_workdir``; a taming/Chameleon checkpoint with ``export.load_vqgan``.
"""

from __future__ import annotations

import jax
from absl import logging

from liquid_jax import fileio
from liquid_jax.data.images import make_buckets
from liquid_jax.data.shapes.sample import STYLE_DEFAULTS
from liquid_jax.data.shapes.world import IMAGE_DATASET, build_shapes_world, dataset_dir
from liquid_jax.data.skips import SkipPolicy
from liquid_jax.data.sources.specs import open_image_text_source
from liquid_jax.encode.chunks import EncodeOptions, SplitEncoder, barrier, write_json
from liquid_jax.encode.preprocess import Preprocess
from liquid_jax.errors import ConfigError
from liquid_jax.parallel.mesh import MeshConfig, make_mesh
from liquid_jax.runs.layout import CODES, ENCODE_SUMMARY, SHAPES_WORLD
from liquid_jax.runs.vqgan import load_configured_vqgan
from liquid_jax.runs.vqgan import load_vqgan_from_workdir as load_vqgan_from_workdir

# -- the command ------------------------------------------------------------------------


def split_specs(config, workdir: str) -> dict[str, str]:
    """``config.source`` and ``config.splits`` -> ``{split: source spec}``.

    ``source`` is a spec with ``{split}`` where the split name goes (``jsonl:/d/{split}.jsonl``,
    ``tfds:/d/ds/1.0.0?split={split}``), a spec without it (one split only), or
    ``"shapes_world"``: the synthetic shapes world, built first (``config.shapes_world``).
    """
    splits = config.splits
    splits = [s.strip() for s in splits.split(",")] if isinstance(splits, str) else list(splits)
    splits = [s for s in splits if s]
    if not splits:
        raise ConfigError("encode-images: config.splits names no split")
    source = config.source
    if source == SHAPES_WORLD:
        sw = config.shapes_world
        out = sw.get("dir", "") or fileio.join(workdir, SHAPES_WORLD)
        if fileio.is_url(out):
            raise ConfigError(
                f"encode-images: the shapes world is built as local TFDS files; set "
                f"config.shapes_world.dir to a local folder (not {out})"
            )
        sizes = {"train": sw.num_train, "validation": sw.num_val, "test": sw.num_test}
        unknown = sorted(set(splits) - set(sizes))
        if unknown:
            raise ConfigError(f"encode-images: the shapes world has no split {unknown}")
        if jax.process_index() == 0:
            style = {k: sw[k] for k in STYLE_DEFAULTS if k in sw}
            build_shapes_world(
                out, sw.num_train, sw.num_val, sw.num_test, sw.image_size, sw.seed, **style
            )
        barrier("encode_images_shapes_world")
        source = f"tfds:{dataset_dir(out, IMAGE_DATASET)}?split={{split}}"
        splits = [s for s in splits if sizes[s] > 0]
    if "{split}" not in source and len(splits) > 1:
        raise ConfigError(
            f"encode-images: config.source {source!r} has no {{split}} placeholder, so it "
            f"names one split, but config.splits is {splits}"
        )
    return {s: source.replace("{split}", s) for s in splits}


def extract_codes(config, workdir: str) -> dict:
    """Runs (or resumes) ``encode-images``; returns ``{split: manifest}`` (also written to
    ``WORKDIR/encode_summary.json``). Codes land in ``WORKDIR/codes/SPLIT``."""
    fileio.makedirs(workdir)
    # --- mesh and model
    mesh = make_mesh(MeshConfig.from_config(config.get("mesh", {})))
    model, vqgan = load_configured_vqgan(config.vqgan, mesh)
    # --- pre-processing
    buckets = None
    if config.buckets.enabled:
        pixels = config.buckets.get("target_pixels", 0) or config.image_size**2
        buckets = make_buckets(pixels, model.config.downsample_factor, config.buckets.max_ratio)
    pre = Preprocess(int(config.image_size), buckets)
    skips = config.skips
    options = EncodeOptions(
        batch_size=config.batch_size,
        records_per_chunk=config.records_per_chunk,
        num_threads=config.num_threads,
        policy=SkipPolicy(
            max_fraction=skips.max_fraction if skips.max_fraction >= 0 else None,
            max_count=skips.max_count if skips.max_count >= 0 else None,
            min_seen=skips.min_seen,
        ),
        log_every_s=config.log_every_s,
    )
    encoder = SplitEncoder(model, mesh, pre, options)
    # --- splits
    summary = {}
    for split, spec in split_specs(config, workdir).items():
        source = open_image_text_source(spec)
        settings = {"source": spec, "vqgan": vqgan, **pre.describe()}
        settings["num_codes"] = model.config.n_embed
        settings["downsample"] = model.config.downsample_factor
        out_dir = fileio.join(workdir, CODES, split)
        logging.info("encode-images %s: %d records of %s -> %s", split, len(source), spec, out_dir)
        summary[split] = encoder.run(source, out_dir, settings, split)
        logging.info(
            "encode-images %s: %d encoded, %d skipped %s, %s images/s",
            split,
            summary[split]["encoded"],
            summary[split]["skipped"],
            summary[split]["skips"],
            summary[split]["images_per_s"],
        )
    if jax.process_index() == 0:
        write_json(fileio.join(workdir, ENCODE_SUMMARY), summary)
    return summary
