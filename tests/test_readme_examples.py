"""The README's "Starting from a real base model" and launch examples, run as written:
the command blocks are read from README.md (the ones after an ``<!-- example: NAME``
comment), and only the paths that exist on a real cluster are replaced by stand-ins:

- ``/ckpt/gemma-7b``: a tiny random Gemma in HF format with a word-level tokenizer,
- ``/data/text/*.jsonl``: two JSON-lines files of word documents,
- ``/data/codes/train``: code shards of 4x4-code images,
- ``gs://BUCKET/run`` (real-base only): a local run directory.

The real-base pair runs ``import-hf`` and then ``train`` for two steps (``runlocal`` and
``--config.total_steps=2`` appended: the recipe's own 30000 steps of 1024 x 2048 tokens
are not for a CPU); the TPU-pod and SLURM commands run to the end of their ``--dry_run``,
which checks the config's paths as ``train`` does.
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import transformers

from liquid_jax.data.sources.code_records import CodeRecordWriter
from tests.tiny import HF_COMMON, HF_VOCAB, save_word_tokenizer

REPO = Path(__file__).resolve().parents[1]


def readme_example(name: str) -> list[list[str]]:
    """The commands of README's ```bash block after ``<!-- example: NAME``, as argument
    lists (continuation lines joined, comments dropped, quotes removed as bash does)."""
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- example: {name}\b[^\n]*-->\n```bash\n(.*?)```", text, re.S)
    assert block, f"README.md has no example block {name!r}"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [argv for argv in (shlex.split(line, comments=True) for line in lines) if argv]


def _substitute(argv: list[str], stand_ins: dict[str, str]) -> list[str]:
    program = {"liquid-jax": [sys.executable, "-m", "liquid_jax.cli"], "python": [sys.executable]}
    out = [*program[argv[0]]]
    for arg in argv[1:]:
        for path, stand_in in stand_ins.items():
            arg = arg.replace(path, stand_in)
        out.append(arg)
    return out


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, **kw)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """The stand-in paths, with the base model already imported by the README's
    ``import-hf`` line (the first command of the real-base block)."""
    root = tmp_path_factory.mktemp("readme")
    hf = root / "gemma-7b"
    config = transformers.GemmaConfig(
        **{**HF_COMMON, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 512}
    )
    transformers.GemmaForCausalLM(config).save_pretrained(hf)
    save_word_tokenizer(str(hf), HF_VOCAB, unused_slots=True)  # <unused0..2>: Liquid's
    text = root / "text"
    text.mkdir()
    rng = np.random.default_rng(0)
    for part in range(2):
        with open(text / f"part{part}.jsonl", "w") as f:
            for _ in range(40):
                words = " ".join(f"w{i}" for i in rng.integers(0, 200, size=30))
                f.write(json.dumps({"text": words}) + "\n")
    codes = root / "codes" / "train"
    with CodeRecordWriter(str(codes)) as writer:
        for i in range(40):
            writer.write(dict(codes=rng.integers(0, 8192, size=16).astype(np.int32), grid_h=4,
                              grid_w=4, caption=f"w{i} w{i + 1} w{i + 2}", orig_w=64, orig_h=64,
                              source_id=f"{i}.png"))  # fmt: skip
    paths = {
        "/ckpt/gemma-7b": str(hf),
        "/ckpt/liquid-gemma7b-init": str(root / "liquid-gemma7b-init"),
        "/data/text/*.jsonl": str(text / "*.jsonl"),
        "/data/codes/train": str(codes),
    }
    import_hf = readme_example("real-base")[0]
    assert import_hf[:2] == ["liquid-jax", "import-hf"]
    done = _run(_substitute(import_hf, paths))
    assert done.returncode == 0, done.stderr[-3000:]
    return paths


def test_real_base_example_imports_and_trains(stand_ins, tmp_path):
    train = readme_example("real-base")[1]
    assert train[:2] == ["liquid-jax", "train"]
    paths = {**stand_ins, "gs://BUCKET/run": str(tmp_path / "run")}
    argv = _substitute(train, paths)
    config = argv.index("--config") + 1  # README: `--config FILE:ARG`
    argv[config] += ",runlocal"  # 512 x 8 tokens a step
    done = _run([*argv, "--config.total_steps=2", "--config.eval_every_steps=0"])
    assert done.returncode == 0, done.stderr[-3000:]
    run = Path(paths["gs://BUCKET/run"])
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 2
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["model"]["init_from"] == stand_ins["/ckpt/liquid-gemma7b-init"]
    assert json.loads((run / "run_info.json").read_text())["tasks"] == ["text", "t2i", "i2t"]


@pytest.mark.parametrize("launcher", ["tpu_pod", "slurm"])
def test_launch_examples_dry_run_checks_the_paths(stand_ins, launcher):
    (command,) = [c for c in readme_example("launch") if c[1] == f"launch/{launcher}.py"]
    assert "--dry_run" in command
    done = _run(_substitute(command, stand_ins))
    assert done.returncode == 0, done.stderr[-3000:]
    platform = {"tpu_pod": "tpu", "slurm": "gpu"}[launcher]
    assert f"--expect_platform={platform}" in done.stdout
    assert f"init={stand_ins['/ckpt/liquid-gemma7b-init']}" in done.stdout

    # As written, without the stand-ins, the data is not here: one line naming it.
    missing = {k: v for k, v in stand_ins.items() if k != "/data/text/*.jsonl"}
    done = _run(_substitute(command, missing))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"{launcher}: data.text_sources: /data/text/*.jsonl: the pattern matches no files"
        + (" (checked on this machine; if the path exists only on the workers, pass "
           "--no_path_check: every worker checks it before training)" if launcher == "tpu_pod"
           else "")
    )  # fmt: skip
