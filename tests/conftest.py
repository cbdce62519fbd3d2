"""Test set-up: 8 fake CPU devices, a persistent compilation cache (shared with the
processes tests start), float32 matmuls, and the ``slow`` / ``torch`` markers applied
(``-m "not slow"`` runs the suite without its longest tests)."""

import os
import types
import warnings

# Must happen before jax is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402
from etils.epath import backend as epath_backend  # noqa: E402
from etils.epath import gpath  # noqa: E402
from fsspec.implementations.memory import MemoryFileSystem  # noqa: E402

from configs.smoke import get_config as smoke_config  # noqa: E402
from liquid_jax.train.loop import train  # noqa: E402
from tests.tiny import hf_checkpoints  # noqa: E402

_CACHE = os.path.abspath(
    os.environ.get("LIQUID_TEST_CACHE", os.path.join(os.path.dirname(__file__), "..", ".jax_cache"))
)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# The processes tests start (CLI runs, launcher and multi-host processes) read the same
# cache: JAX takes these settings from the environment.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# Parity tests compare against float32 PyTorch: no reduced-precision matmul passes.
jax.config.update("jax_default_matmul_precision", "highest")

# Grain worker processes read absl flags; outside absl.app.run they must be marked parsed.
flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``(workdir, last metrics)`` of a 40-step smoke run that keeps checkpoints 20 and 40
    and logs the validation loss of the in-memory model at both."""
    workdir = tmp_path_factory.mktemp("smoke_run")
    config = smoke_config("steps=40")
    config.eval_every_steps = config.checkpoint_every_steps = 20
    last = train(config, str(workdir))
    return str(workdir), last


@pytest.fixture(scope="session")
def hf_checkpoint(tmp_path_factory):
    """``get(variant) -> (HF model, its save_pretrained directory)`` for the random HF
    causal LMs of ``tests.tiny.HF_VARIANTS``, each built and written once per session."""
    return hf_checkpoints(str(tmp_path_factory.mktemp("hf_checkpoints")))


class _FakeGCS(MemoryFileSystem):
    """``gs://bucket/key`` kept in memory; like gcsfs, mode "a" overwrites the object."""

    protocol = ("gs", "gcs")

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("gs://"))

    def _open(self, path, mode="rb", **kwargs):
        if "a" in mode:
            msg = "Append mode 'a' is not supported in GCS. Using overwrite mode instead."
            warnings.warn(msg, stacklevel=2)
            mode = mode.replace("a", "w")
        return super()._open(path, mode, **kwargs)


@pytest.fixture
def gcs(monkeypatch, tmp_path):
    """The fake bucket's filesystem; ``store`` maps ``/bucket/key`` to its file."""
    fs = _FakeGCS(global_store=False, skip_instance_cache=True)
    monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)  # gs:// -> fsspec backend
    monkeypatch.setattr(epath_backend.fsspec_backend, "fs", lambda path: fs)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield fs
    assert os.listdir(cwd) == [], "a URL was written as a local path"


@pytest.fixture(scope="session")
def cpu_devices():
    devices = jax.devices()
    assert len(devices) >= 8, "tests expect 8 fake CPU devices (XLA_FLAGS set too late?)"
    return devices


# Tests that take more than ~20 s on 2 CPU cores (seconds measured with --durations on
# a busy 2-core machine, warm compilation cache), by node id or id prefix.
SLOW = {
    "tests/demo/test_demo.py": 120,  # the runlocal demo, every stage
    "tests/train/test_multihost.py": 60,  # 2 launcher runs of 2 processes + 1 process
    "tests/train/test_preemption_hosts.py": 55,  # 2 processes stopped by SIGTERM, then resumed
    "tests/test_readme_examples.py::test_real_base_example_imports_and_trains": 50,
    "tests/train/test_vqgan_train.py::test_training_raises_psnr": 60,
    "tests/train/test_vqgan_train.py::test_resume_equals_straight_run": 45,
    "tests/train/test_vqgan_train.py::test_gan_path_trains_both_networks_from_disc_start": 25,
    "tests/train/test_train_loop.py::test_sigkill_then_resume_equals_straight_run": 45,
    "tests/train/test_train_loop.py::test_sharded_training_matches_single_device": 25,
    "tests/launch/test_sweep.py::test_sweep_runs_points_reports_a_failed_one": 40,
    "tests/demo/test_probe.py::test_probe_reads_real_test_images": 40,
    "tests/encode/test_encode_images.py::test_two_hosts_split_records_and_agree_on_resume": 22,
}
# A test module holding one of these (imported at its top) needs the torch extra.
TORCH_MODULES = ("torch", "transformers", "diffusers")


def _needs_torch(module) -> bool:
    return any(
        isinstance(value, types.ModuleType) and value.__name__.split(".")[0] in TORCH_MODULES
        for value in vars(module).values()
    )


def pytest_collection_modifyitems(config, items):
    """Applies ``slow`` (the ``SLOW`` table) and ``torch`` (test modules that import
    torch, transformers or diffusers) so that ``-m "not slow"`` / ``-m "not torch"``
    leave them out."""
    del config
    for item in items:
        if item.nodeid.startswith(tuple(SLOW)):
            item.add_marker(pytest.mark.slow)
        module = getattr(item, "module", None)
        if module is not None and _needs_torch(module):
            item.add_marker(pytest.mark.torch)
