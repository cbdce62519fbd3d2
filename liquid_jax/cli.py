"""The ``liquid-jax`` command: one subcommand per stage of the Liquid recipe.

    liquid-jax demo --workdir DIR
    liquid-jax train-vqgan --config F --workdir DIR
    liquid-jax encode-images --config F --workdir DIR
    liquid-jax train --config F --workdir DIR
    liquid-jax sample --workdir DIR --task t2i|i2t|text --prompt ... --out OUTDIR
    liquid-jax serve --hf_dir D --vqgan V [--port 8080] [--host 127.0.0.1]
    liquid-jax import-hf --hf_dir D --out DIR [--image_codes N]
    liquid-jax export --workdir DIR --out D

Flags are absl flags; ``--config`` is an ml_collections config file with an optional
``:arg``, overridable as ``--config.a.b=value``. Each command imports only its own stage:
``train`` alone pulls in Grain, Orbax and TFDS (about 1 s of start-up ``sample`` does
not need).

A user's mistake (``liquid_jax.errors.UserError``: a bad flag, config value or path,
unusable input) ends in one line on stderr, ``liquid-jax COMMAND: error: MESSAGE``, and
exit status 1; ``--debug`` or ``LIQUID_DEBUG=1`` shows its traceback. Any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from liquid_jax.cli_args import (
    check_config_file,
    check_config_overrides,
    debug_requested,
    with_default_config,
)
from liquid_jax.errors import ConfigError, is_user_error
from liquid_jax.parallel import initialize_distributed

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
flags.DEFINE_float(
    "cfg",
    None,
    "sample: classifier-free guidance scale (t2i; default: the "
    "run's evaluated scale in run_info.json, else 7.0; 1: off).",
)
flags.DEFINE_integer("seed", 0, "sample: random seed.")
flags.DEFINE_string("vqgan", None, "sample: taming VQGAN checkpoint (dir, .yaml, .ckpt).")
flags.DEFINE_string("grid", None, "sample t2i: code grid HxW (default: VQGAN resolution/16).")
flags.DEFINE_integer("max_new_tokens", None, "sample i2t/text: tokens to generate (128).")
flags.DEFINE_float("temperature", None, "sample: temperature (t2i 0.99; i2t/text greedy).")
flags.DEFINE_integer("top_k", None, "sample: top-k (t2i 4096; text off).")
flags.DEFINE_float("top_p", None, "sample: top-p (t2i 0.96; text off).")
flags.DEFINE_float(
    "cfg_min_p",
    None,
    "sample: t2i guidance only among codes of conditional probability >= this times the "
    "best one's (default: the run's evaluated value, else 0: plain guidance).",
)
flags.DEFINE_bool(
    "chat", False, "sample text: a user turn of the tokenizer's chat template (else Gemma's)."
)
flags.DEFINE_bool("size_prefix", False, "sample t2i: multi-resolution 'Image Size' prompt.")
flags.DEFINE_integer("sample_batch", 8, "sample: samples per compiled batch.")
flags.DEFINE_integer("port", 8080, "serve: TCP port (0: any free port).")
flags.DEFINE_string("host", "127.0.0.1", "serve: address to listen on (0.0.0.0: every machine).")
flags.DEFINE_enum(
    "dtype", None, ["bfloat16", "float32"], "sample: weights and compute (CPU f32, else bf16)."
)
flags.DEFINE_string("mesh", None, "sample: shard the model over devices, e.g. tensor=8.")
flags.DEFINE_string("boi_token", "<unused0>", "sample: the tokenizer's <boi> (no liquid_vocab).")
flags.DEFINE_string("eoi_token", "<unused1>", "sample: the tokenizer's <eoi> (no liquid_vocab).")
flags.DEFINE_string("uncond_token", "<unused2>", "sample: its <unconditional> token.")
flags.DEFINE_enum("quantize", None, ["int8"], "sample, serve: weight-only int8 matmul weights.")
flags.DEFINE_bool("debug", False, "Show the traceback of a user error too (or LIQUID_DEBUG=1).")
flags.DEFINE_bool("dry_run", False, "train: check the config's paths (and devices), then stop.")
flags.DEFINE_enum("expect_platform", None, ["cpu", "gpu", "tpu"],
                  "train: stop unless JAX sees devices of this platform.")  # fmt: skip
flags.DEFINE_bool("allow_nonstock_vqgan", False,
                  "export: write a VQGAN stock PyTorch encoders cannot reproduce, documented "
                  "in the export's README.")  # fmt: skip

# The flags each command reads (beside --debug and absl's own); any other is refused.
_SAMPLE_FLAGS = ("workdir", "hf_dir", "out", "task", "prompt", "image", "num_samples", "cfg",
                 "seed", "vqgan", "grid", "max_new_tokens", "temperature", "top_k", "top_p",
                 "cfg_min_p", "chat", "size_prefix", "sample_batch")  # fmt: skip
# How a model is loaded for generation (sample and serve).
_LOAD_FLAGS = ("dtype", "mesh", "boi_token", "eoi_token", "uncond_token", "quantize")
COMMAND_FLAGS: dict[str, tuple[str, ...]] = {
    "demo": ("config", "workdir"),
    "train-vqgan": ("config", "workdir"),
    "encode-images": ("config", "workdir"),
    "train": ("config", "workdir", "dry_run", "expect_platform"),
    "sample": _SAMPLE_FLAGS + _LOAD_FLAGS,
    "serve": ("workdir", "hf_dir", "vqgan", "host", "port", "grid", "size_prefix", "sample_batch")
    + _LOAD_FLAGS,
    "import-hf": ("hf_dir", "out", "image_codes"),
    "export": ("workdir", "out", "allow_nonstock_vqgan"),
}


def _require(*names: str) -> None:
    missing = [f"--{n}" for n in names if getattr(FLAGS, n) in (None, "")]
    if missing:
        raise ConfigError(f"missing required flag(s): {', '.join(missing)}")


def _import_hf() -> None:
    _require("hf_dir", "out")
    # this command's stage only (start-up time; see the module docstring)
    from liquid_jax.export import import_hf

    import_hf(FLAGS.hf_dir, FLAGS.out, image_codes=FLAGS.image_codes)
    logging.info("wrote %s", FLAGS.out)


def _export() -> None:
    _require("workdir", "out")
    # this command's stage only (start-up time; see the module docstring)
    from liquid_jax.runs.export_run import export_run

    export_run(FLAGS.workdir, FLAGS.out, allow_nonstock_vqgan=FLAGS.allow_nonstock_vqgan)
    logging.info("wrote %s", FLAGS.out)


def _train_vqgan() -> None:
    _require("config", "workdir")
    # this command's stage only (start-up time; see the module docstring)
    from liquid_jax.train.vqgan_loop import train_vqgan

    metrics = train_vqgan(FLAGS.config, FLAGS.workdir)
    logging.info("train-vqgan: final validation metrics %s", metrics)


def _train() -> None:
    _require("config", "workdir")
    # this command's stage only (start-up time; see the module docstring)
    from liquid_jax.train.loop import train
    from liquid_jax.train.validate import check_config, check_platform

    if FLAGS.dry_run:  # one process alone: no jax.distributed, nothing compiled
        check_config(FLAGS.config, FLAGS.workdir)
        devices = check_platform(FLAGS.expect_platform)
        print(f"liquid-jax train: dry run: the config's paths exist; {devices}")
        return
    initialize_distributed()
    check_platform(FLAGS.expect_platform)
    metrics = train(FLAGS.config, FLAGS.workdir)
    if metrics:  # {}: already at total_steps (train said so)
        logging.info("train: last metrics %s", metrics)


def _encode_images() -> None:
    _require("config", "workdir")
    # this command's stage only (start-up time; see the module docstring)
    from liquid_jax.encode.images import extract_codes

    initialize_distributed()
    summary = extract_codes(FLAGS.config, FLAGS.workdir)
    logging.info("encode-images: wrote codes of %s under %s", ", ".join(summary), FLAGS.workdir)


def _load_kwargs() -> dict:
    """``_LOAD_FLAGS`` as ``load_for_sampling``'s keyword arguments."""
    return dict(
        dtype=FLAGS.dtype,
        mesh=FLAGS.mesh,
        special_tokens=(FLAGS.boi_token, FLAGS.eoi_token, FLAGS.uncond_token),
        quantize=FLAGS.quantize,
    )


def _sample() -> None:
    _require("out")
    if not FLAGS.workdir and not FLAGS.hf_dir:
        raise ConfigError("sample needs --workdir or --hf_dir")
    # this command's stage only (start-up time; see the module docstring)
    from liquid_jax.sample.cli_sample import run_sample

    files = run_sample(
        task=FLAGS.task,
        out=FLAGS.out,
        workdir=FLAGS.workdir,
        hf_dir=FLAGS.hf_dir,
        vqgan=FLAGS.vqgan,
        prompt=FLAGS.prompt,
        image=FLAGS.image,
        num_samples=FLAGS.num_samples,
        cfg=FLAGS.cfg,
        seed=FLAGS.seed,
        grid=FLAGS.grid,
        max_new_tokens=FLAGS.max_new_tokens,
        temperature=FLAGS.temperature,
        top_k=FLAGS.top_k,
        top_p=FLAGS.top_p,
        cfg_min_p=FLAGS.cfg_min_p,
        chat=FLAGS.chat,
        size_prefix=FLAGS.size_prefix,
        batch_size=FLAGS.sample_batch,
        **_load_kwargs(),
    )
    logging.info("sample: wrote %d files to %s", len(files), FLAGS.out)


def _serve() -> None:
    # this command's stage only (start-up time; see the module docstring)
    from liquid_jax.serve.cli_serve import run_serve

    run_serve(
        workdir=FLAGS.workdir,
        hf_dir=FLAGS.hf_dir,
        vqgan=FLAGS.vqgan,
        host=FLAGS.host,
        port=FLAGS.port,
        grid=FLAGS.grid,
        size_prefix=FLAGS.size_prefix,
        batch_size=FLAGS.sample_batch,
        **_load_kwargs(),
    )


def _demo() -> None:
    _require("workdir")
    # this command's stage only (start-up time; see the module docstring)
    from liquid_jax.demo import run_demo

    run_demo(FLAGS.config, FLAGS.workdir)


COMMANDS: dict[str, Callable[[], None]] = {
    "demo": _demo,
    "train-vqgan": _train_vqgan,
    "encode-images": _encode_images,
    "train": _train,
    "sample": _sample,
    "serve": _serve,
    "import-hf": _import_hf,
    "export": _export,
}


def _usage() -> str:
    lines = [__doc__ or "", "commands and their flags (all take --debug):"]
    for command in COMMANDS:
        lines.append(f"\n  {command}")
        for name in COMMAND_FLAGS.get(command, ()):
            flag = FLAGS[name]
            default = "" if flag.default in (None, "", False) else f" (default {flag.default})"
            lines.append(f"    --{name}: {flag.help}{default}")
    return "\n".join(lines) + "\n"


def check_command_flags(command: str) -> None:
    """Refuses a flag of this file that ``command`` does not read (absl accepts every
    defined flag anywhere, so ``train --prompt x`` would be silently ignored). Flags of
    libraries (absl logging, Grain, Orbax) pass."""
    allowed = COMMAND_FLAGS.get(command)
    if allowed is None:
        return
    here = FLAGS.find_module_defining_flag("workdir")  # this file, however it was started
    for name in sorted(FLAGS):
        if not FLAGS[name].present or FLAGS.find_module_defining_flag(name) != here:
            continue
        if name not in allowed and name != "debug":
            raise ConfigError(
                f"--{name} is not a flag of {command} (its flags: "
                f"{', '.join('--' + f for f in allowed)}, --debug)"
            )


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag (an unknown one, a value of the wrong type, a
    ``--config`` whose ``get_config`` raises a ``UserError``) turned into a
    ``ConfigError`` instead of absl's exit. A config file that fails otherwise (a bug in
    it) keeps its traceback."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        chain, cause = [], e.__cause__ or e.__context__
        while cause is not None and len(chain) < 10:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        inner = [c for c in chain if is_user_error(c)]
        flag = str(e).split(": ", 1)[0]  # absl's "flag --name=value"
        if inner:
            raise ConfigError(f"{flag}: {inner[-1]}") from e
        if "Traceback" in str(e):  # ml_collections formats get_config's traceback in
            raise
        raise ConfigError(str(e)) from e


def run(argv: list[str] | None = None) -> None:
    """Console entry point: ``liquid-jax COMMAND [--flags]``.

    A user error (``liquid_jax.errors.is_user_error``) prints one line and exits 1; any
    other exception propagates with its traceback (see the module docstring).
    """
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        print(f"liquid-jax: unknown command {command!r}\n{_usage()}", file=sys.stderr)
        sys.exit(2)

    def main(_):
        check_command_flags(command)
        COMMANDS[command]()

    try:
        argv = [*argv[:2], *with_default_config(command, argv[2:])]
        check_config_file(argv[2:])
        check_config_overrides(argv[2:])
        flag_argv = [f"liquid-jax {command}", *argv[2:]]
        # ml_collections reads --config.* overrides from sys.argv, not from app.run's argv.
        sys.argv = flag_argv
        app.run(main, argv=flag_argv, flags_parser=_parse_flags)
    except Exception as error:
        if not is_user_error(error) or debug_requested(argv):
            raise
        print(f"liquid-jax {command}: error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run()
