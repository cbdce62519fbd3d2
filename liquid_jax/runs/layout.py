"""What a run directory holds: every file and folder name the commands write, in one table.

checkpoints/<step>/     train, train-vqgan  Orbax: arrays, each host's data position, meta
metrics.jsonl           train, train-vqgan  one JSON object per logged step
tensorboard/            train, train-vqgan  TensorBoard events
run_info.json           train               the model spec; the VQGAN the codes came from
train_config.json       train               the resolved config of the latest start
liquid_vocab.json       train, import-hf,   the merged vocabulary's layout (text, image
                        export              codes, special ids)
tokenizer/              train               the text tokenizer (an HF directory holds its
                                            files at its root)
config.json, *.safetensors  import-hf, export   an HF transformers model
vqgan/                  export              the VQGAN as a taming checkpoint (vqgan.yaml)
codes/<split>/          encode-images       code shards (ArrayRecord) and their manifest
encode_summary.json     encode-images       what was encoded, from which VQGAN
shapes_world/           encode-images, demo the generated synthetic world (TFDS)
"""

from __future__ import annotations

from liquid_jax import fileio
from liquid_jax.data.vocab import VOCAB_FILE

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
RUN_INFO = "run_info.json"
TRAIN_CONFIG = "train_config.json"
VOCAB = VOCAB_FILE
TOKENIZER = "tokenizer"
HF_CONFIG = "config.json"
VQGAN = "vqgan"
VQGAN_YAML = "vqgan.yaml"
CODES = "codes"
ENCODE_SUMMARY = "encode_summary.json"
SHAPES_WORLD = "shapes_world"


def checkpoints_dir(workdir: str) -> str:
    """``workdir/checkpoints`` as an absolute path (or the URL)."""
    return fileio.join(fileio.absolute(workdir), CHECKPOINTS)


def is_train_workdir(path: str) -> bool:
    """A ``train`` run: ``run_info.json`` beside ``checkpoints/``."""
    return fileio.isfile(fileio.join(path, RUN_INFO)) and fileio.isdir(
        fileio.join(path, CHECKPOINTS)
    )


def is_hf_liquid_dir(path: str) -> bool:
    """An HF model with Liquid's vocabulary layout, as ``import-hf`` and ``export`` write."""
    return fileio.isfile(fileio.join(path, HF_CONFIG)) and fileio.isfile(fileio.join(path, VOCAB))


def is_hf_model_dir(path: str) -> bool:
    """An HF causal LM with its tokenizer (e.g. a released Liquid model as downloaded)."""
    return fileio.isfile(fileio.join(path, HF_CONFIG)) and any(
        fileio.isfile(fileio.join(path, name)) for name in ("tokenizer.model", "tokenizer.json")
    )
