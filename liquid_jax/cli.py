"""The ``liquid-jax`` command: one subcommand per stage of the Liquid recipe.

    liquid-jax demo --workdir DIR
    liquid-jax train-vqgan --config F --workdir DIR
    liquid-jax encode-images --config F --workdir DIR
    liquid-jax train --config F --workdir DIR
    liquid-jax sample --workdir DIR --task t2i|i2t|text --prompt ... --out OUTDIR
    liquid-jax import-hf --hf_dir D --out DIR [--image_codes N]
    liquid-jax export --workdir DIR --out D

Flags are absl flags; ``--config`` is an ml_collections config file with an optional
``:arg``, overridable as ``--config.a.b=value``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS

config_flags.DEFINE_config_file("config", None, "ml_collections config file[:arg].")
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, outputs.")
flags.DEFINE_string("hf_dir", None, "import-hf: a HF transformers causal-LM directory.")
flags.DEFINE_string("out", None, "Output directory (import-hf, export, sample).")
flags.DEFINE_integer("image_codes", 8192, "import-hf: number of image codes to add.")
flags.DEFINE_enum("task", "t2i", ["t2i", "i2t", "text"], "sample: what to generate.")
flags.DEFINE_string("prompt", None, "sample: caption (t2i), question (i2t) or text prompt.")
flags.DEFINE_string("image", None, "sample: input image for i2t.")
flags.DEFINE_integer("num_samples", 4, "sample: samples per prompt.")
flags.DEFINE_float("cfg", 7.0, "sample: classifier-free guidance scale (t2i).")
flags.DEFINE_integer("seed", 0, "sample: random seed.")


def _require(*names: str) -> None:
    missing = [f"--{n}" for n in names if getattr(FLAGS, n) in (None, "")]
    if missing:
        raise app.UsageError(f"missing required flag(s): {', '.join(missing)}")


def _import_hf() -> None:
    _require("hf_dir", "out")
    from liquid_jax.export import import_hf

    import_hf(FLAGS.hf_dir, FLAGS.out, image_codes=FLAGS.image_codes)
    logging.info("wrote %s", FLAGS.out)


def _export() -> None:
    _require("workdir", "out")
    from liquid_jax.export import export_hf

    export_hf(FLAGS.workdir, FLAGS.out)
    logging.info("wrote %s", FLAGS.out)


def _train_vqgan() -> None:
    _require("config", "workdir")
    from liquid_jax.train.vqgan_loop import train_vqgan

    metrics = train_vqgan(FLAGS.config, FLAGS.workdir)
    logging.info("train-vqgan: final validation metrics %s", metrics)


def _train() -> None:
    _require("config", "workdir")
    from liquid_jax.parallel import initialize_distributed
    from liquid_jax.train.loop import train

    initialize_distributed()
    metrics = train(FLAGS.config, FLAGS.workdir)
    logging.info("train: last metrics %s", metrics)


def _encode_images() -> None:
    _require("config", "workdir")
    from liquid_jax.data.encode_images import extract_codes
    from liquid_jax.parallel import initialize_distributed

    initialize_distributed()
    summary = extract_codes(FLAGS.config, FLAGS.workdir)
    logging.info("encode-images: wrote codes of %s under %s", ", ".join(summary), FLAGS.workdir)


def _not_built(name: str) -> Callable[[], None]:
    def run() -> None:
        print(f"liquid-jax {name}: not available in this version yet", file=sys.stderr)
        sys.exit(2)

    return run


COMMANDS: dict[str, Callable[[], None]] = {
    "demo": _not_built("demo"),
    "train-vqgan": _train_vqgan,
    "encode-images": _encode_images,
    "train": _train,
    "sample": _not_built("sample"),
    "import-hf": _import_hf,
    "export": _export,
}


def _usage() -> str:
    return (__doc__ or "") + "\ncommands: " + ", ".join(COMMANDS) + "\n"


def run(argv: list[str] | None = None) -> None:
    """Console entry point: ``liquid-jax COMMAND [--flags]``."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        print(f"liquid-jax: unknown command {command!r}\n{_usage()}", file=sys.stderr)
        sys.exit(2)

    def main(_):
        COMMANDS[command]()

    app.run(main, argv=[f"liquid-jax {command}", *argv[2:]])


if __name__ == "__main__":
    run()
