"""A user's mistake ends in one line, ``liquid-jax COMMAND: error: ...`` and exit status 1,
never a traceback; ``--debug`` / ``LIQUID_DEBUG=1`` show it; a bug keeps its traceback.

Most cases call ``cli.run(argv)`` in this process (a traceback would be an exception
escaping it); a few start the command as a user does, in a fresh process."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from flax import nnx
from PIL import Image

from liquid_jax import cli
from liquid_jax.errors import ConfigError, InputError, PathNotFoundError, UserError
from liquid_jax.export import save_hf, save_vqgan
from liquid_jax.models.vqgan import VQGAN, VQGANConfig
from tests.tiny import CONTEXT, VQGAN_FIELDS, make_sampling_assets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = "from liquid_jax.cli import run; run()"


@pytest.fixture
def liquid_jax(monkeypatch, capsys):
    """``liquid_jax(command, *flags) -> (exit status, stderr)``, in this process, with
    every flag back at its default before and after (absl keeps values between parses)."""
    monkeypatch.delenv("LIQUID_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest"])

    def call(*argv: str):
        flags.FLAGS.unparse_flags()
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            cli.run(["liquid-jax", *argv])
        return exit_info.value.code, capsys.readouterr().err

    yield call
    flags.FLAGS.unparse_flags()
    flags.FLAGS.mark_as_parsed()


def _one_line_error(code, err, command, *names):
    """Exit 1, and the last stderr line is the error naming each of ``names``."""
    assert code == 1, err[-2000:]
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith(f"liquid-jax {command}: error: "))
    for name in names:
        assert str(name) in err, (name, line)
    return line


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny HF-format Liquid directory (tokenizer, layout, VQGAN beside the weights)."""
    root = tmp_path_factory.mktemp("cli_errors")
    model, layout, _, vqgan = make_sampling_assets(str(root / "tokenizer"))
    path = root / "liquid_hf"
    save_hf(model, str(path), tokenizer=str(root / "tokenizer"))
    layout.save(str(path))
    save_vqgan(vqgan, str(path / "vqgan"), formats=("safetensors",))
    return path


# -- import-hf ------------------------------------------------------------------------


def test_import_hf_without_config_json(liquid_jax, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = liquid_jax("import-hf", f"--hf_dir={empty}", f"--out={tmp_path / 'out'}")
    _one_line_error(code, err, "import-hf", empty, "no config.json")
    assert not (tmp_path / "out").exists()


def test_import_hf_of_an_unsupported_architecture(liquid_jax, tmp_path):
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64,
              "n_layer": 2, "n_head": 4, "vocab_size": 100, "torch_dtype": "float32"}  # fmt: skip
    (gpt2 / "config.json").write_text(json.dumps(config))
    code, err = liquid_jax("import-hf", f"--hf_dir={gpt2}", f"--out={tmp_path / 'out'}")
    _one_line_error(code, err, "import-hf", gpt2 / "config.json", "'gpt2'", "GPT2LMHeadModel")


def test_import_hf_with_a_tensor_that_contradicts_its_config(liquid_jax, hf_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(hf_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["intermediate_size"] *= 2
    (broken / "config.json").write_text(json.dumps(config))
    code, err = liquid_jax("import-hf", f"--hf_dir={broken}", f"--out={tmp_path / 'out'}")
    line = _one_line_error(code, err, "import-hf", broken, "mlp.", "from config.json")
    assert "has shape" in line and "tensor 'model.layers.0.mlp" in line


# -- sample ---------------------------------------------------------------------------


def test_sample_from_a_workdir_that_does_not_exist(liquid_jax, tmp_path):
    missing = tmp_path / "no_such_run"
    code, err = liquid_jax("sample", f"--workdir={missing}", "--task=text", "--prompt=w1",
                           f"--out={tmp_path / 'out'}")  # fmt: skip
    _one_line_error(code, err, "sample", missing, "no HF export / checkpoint found")


def test_sample_with_an_unreadable_image(liquid_jax, tmp_path):
    image = tmp_path / "photo.png"
    image.write_text("not an image")
    code, err = liquid_jax("sample", f"--workdir={tmp_path}", "--task=i2t", f"--image={image}",
                           f"--out={tmp_path / 'out'}")  # fmt: skip
    _one_line_error(code, err, "sample", image, "not an image file")


def test_sample_with_a_prompt_longer_than_the_context(liquid_jax, hf_dir, tmp_path):
    long = " ".join(["w1"] * (CONTEXT + 4))
    code, err = liquid_jax("sample", f"--hf_dir={hf_dir}", "--task=text", f"--prompt={long}",
                           "--max_new_tokens=4", f"--out={tmp_path / 'out'}")  # fmt: skip
    _one_line_error(code, err, "sample", "prompt 0", "longer than", f"context of {CONTEXT}")


# -- train, encode-images: configs and data ---------------------------------------------


def test_a_misspelled_config_file(liquid_jax, tmp_path):
    code, err = liquid_jax("train", f"--config={REPO}/configs/smok.py:steps=2",
                           f"--workdir={tmp_path}")  # fmt: skip
    line = _one_line_error(code, err, "train", f"{REPO}/configs/smok.py", "no such file")
    assert f"did you mean {REPO}/configs/smoke.py" in line
    code, err = liquid_jax("train", f"--config={REPO}/configs/smoke.py:stepz=2",
                           f"--workdir={tmp_path}")  # fmt: skip
    _one_line_error(code, err, "train", "'stepz'", "steps")
    code, err = liquid_jax("train", f"--config={REPO}/configs/smoke.py")
    _one_line_error(code, err, "train", "missing required flag(s): --workdir")
    assert not (tmp_path / "checkpoints").exists()


def test_train_with_a_missing_text_source(liquid_jax, tmp_path):
    missing = tmp_path / "corpus.jsonl"
    code, err = liquid_jax(
        "train",
        f"--config={REPO}/configs/smoke.py:steps=2",
        f"--workdir={tmp_path / 'run'}",
        f"--config.data.text_sources=('jsonl:{missing}',)",
    )
    _one_line_error(code, err, "train", missing, "no such file")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_encode_images_over_the_skip_limit(liquid_jax, tmp_path):
    model = VQGAN(VQGANConfig(resolution=16, **VQGAN_FIELDS), rngs=nnx.Rngs(0))
    save_vqgan(model, str(tmp_path / "vqgan"), formats=("safetensors",))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "ok.png")
    lines = [{"image_path": "ok.png" if i % 4 == 0 else f"gone{i}.png", "text": "t"}
             for i in range(16)]  # fmt: skip
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, err = liquid_jax(
        "encode-images",
        f"--config={REPO}/configs/encode_shapes.py:runlocal",
        f"--workdir={tmp_path / 'codes'}",
        f"--config.source=jsonl:{tmp_path / 'train.jsonl'}",
        "--config.splits=train",
        f"--config.vqgan.path={tmp_path / 'vqgan'}",
        "--config.image_size=16",
        "--config.batch_size=8",
        "--config.records_per_chunk=8",
        "--config.skips.max_fraction=0.1",
        "--config.skips.min_seen=4",
    )
    _one_line_error(code, err, "encode-images", "missing_file", "gone1.png")


# -- flags, config args and the dry run -------------------------------------------------


def test_a_flag_the_command_does_not_read(liquid_jax, tmp_path):
    code, err = liquid_jax("train", f"--config={REPO}/configs/smoke.py", f"--workdir={tmp_path}",
                           "--prompt=x")  # fmt: skip
    line = _one_line_error(code, err, "train", "--prompt is not a flag of train")
    assert "--dry_run" in line and "--config" in line
    assert not (tmp_path / "checkpoints").exists()
    code, err = liquid_jax("import-hf", f"--hf_dir={tmp_path}", f"--out={tmp_path}", "--cfg=3")
    _one_line_error(code, err, "import-hf", "--cfg is not a flag of import-hf")


def test_help_lists_each_commands_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["liquid-jax", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    sections = {
        m.group(1): m.group(2) for m in re.finditer(r"^  (\S+)\n((?:    .*\n)*)", out, re.M)
    }
    assert "--dry_run:" in sections["train"] and "--prompt" not in sections["train"]
    assert "--prompt:" in sections["sample"] and "--cfg:" in sections["sample"]
    assert "--image_codes:" in sections["import-hf"] and "(default 8192)" in sections["import-hf"]


def test_a_config_arg_that_is_not_a_boolean(liquid_jax, tmp_path):
    code, err = liquid_jax("train", f"--config={REPO}/configs/liquid.py:runlocal=flase",
                           f"--workdir={tmp_path}")  # fmt: skip
    _one_line_error(code, err, "train", "runlocal='flase'", "not a boolean")


def test_dry_run_names_the_missing_init_from_and_checks_the_platform(liquid_jax, tmp_path):
    missing = tmp_path / "liquid-init"
    run = tmp_path / "run"
    code, err = liquid_jax("train", f"--config={REPO}/configs/liquid.py:init={missing}",
                           f"--workdir={run}", "--dry_run")  # fmt: skip
    _one_line_error(code, err, "train", f"model.init_from: {missing}: no such directory")
    code, err = liquid_jax("train", f"--config={REPO}/configs/smoke.py", f"--workdir={run}",
                           "--dry_run")  # fmt: skip
    assert code in (0, None), err[-2000:]
    code, err = liquid_jax("train", f"--config={REPO}/configs/smoke.py", f"--workdir={run}",
                           "--dry_run", "--expect_platform=tpu")  # fmt: skip
    _one_line_error(code, err, "train", "--expect_platform tpu: JAX sees 8 cpu devices",
                    "'.[tpu]'")  # fmt: skip
    assert not run.exists()  # a dry run writes nothing


# -- the switches: --debug, LIQUID_DEBUG, bugs ----------------------------------------------


def test_liquid_debug_raises_the_user_error(liquid_jax, monkeypatch, tmp_path):
    monkeypatch.setenv("LIQUID_DEBUG", "1")
    with pytest.raises(PathNotFoundError, match="no config.json"):
        liquid_jax("import-hf", f"--hf_dir={tmp_path}", f"--out={tmp_path / 'out'}")


def test_a_bug_is_not_a_user_error(liquid_jax, monkeypatch):
    def export():
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "export", export)
    with pytest.raises(ZeroDivisionError):
        liquid_jax("export", "--workdir=x", "--out=y")


def test_error_classes_keep_their_builtin_types():
    assert issubclass(ConfigError, ValueError) and issubclass(InputError, ValueError)
    assert issubclass(PathNotFoundError, FileNotFoundError)
    from liquid_jax.data.images import ImageError
    from liquid_jax.data.skips import TooManySkipsError
    from liquid_jax.runs.checkpoints import NoIntactCheckpointError
    from liquid_jax.runs.load import NoModelError

    for cls in (ImageError, TooManySkipsError, NoModelError, NoIntactCheckpointError):
        assert issubclass(cls, UserError), cls


def _command(*argv, entry=ENTRY, env=None):
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", **(env or {})}
    return subprocess.run([sys.executable, "-c", entry, *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_as_a_user_runs_it_one_line_or_with_debug_a_traceback(tmp_path):
    argv = ("import-hf", f"--hf_dir={tmp_path}", f"--out={tmp_path / 'out'}")
    plain = _command(*argv)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr, plain.stderr[-2000:]
    assert plain.stderr.strip().splitlines()[-1] == (
        f"liquid-jax import-hf: error: {tmp_path}: no config.json (not an HF model directory)"
    )
    debug = _command(*argv, "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "PathNotFoundError" in debug.stderr
    bug = _command("export", "--workdir=x", "--out=y",
                   entry="from liquid_jax import cli; cli.COMMANDS['export'] = lambda: 1 / 0; "
                         "cli.run()")  # fmt: skip
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "ZeroDivisionError" in bug.stderr
    assert "liquid-jax export: error" not in bug.stderr
