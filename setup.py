"""liquid_jax: Liquid (unified multimodal generation by next-token prediction) in JAX/Flax."""

from pathlib import Path

from setuptools import find_packages, setup

TORCH = [
    "torch==2.13.0",
    "transformers>=5.0",
    "safetensors>=0.5",
    "diffusers>=0.35",
]

setup(
    name="liquid_jax",
    version="0.1.0",
    description="Liquid: language models as scalable unified multimodal generators, in JAX/Flax",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["liquid_jax", "liquid_jax.*"]),
    package_data={"liquid_jax.serve": ["static/*"]},  # the page `liquid-jax serve` sends
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "grain>=0.2.18",
        "array_record>=0.8.6",
        "tensorflow-datasets>=4.9.10",
        "sentencepiece>=0.2.0",
        "tokenizers>=0.20",
        "ml-collections>=1.1.0",
        "chex>=0.1.90",
        "absl-py",
        "numpy",
        "pillow",
        "safetensors>=0.5",
        "tensorboardX",
        "matplotlib",
        "pyyaml",
        "jinja2>=3.1",  # chat templates of HF tokenizers
    ],
    extras_require={
        "torch": TORCH,
        # serve runs on the standard library (http.server); the extra names the command.
        "serve": [],
        # selenium drives Debian's chromium + chromedriver in tests/serve (no download).
        "test": TORCH + ["pytest>=8", "pytest-xdist", "ruff", "selenium>=4.20"],
        # gcsfs: etils.epath's gs:// backend, for --workdir gs://bucket/run.
        "tpu": ["jax[tpu]>=0.10.2", "gcsfs>=2026.10.1"],
        "gpu": ["jax[cuda12]>=0.10.2"],
    },
    entry_points={"console_scripts": ["liquid-jax=liquid_jax.cli:run"]},
)
