"""A device mesh from config: axes ``data``, ``fsdp``, ``tensor`` (plus a DCN factor)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from liquid_jax.errors import ConfigError

AXES = ("data", "fsdp", "tensor")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Sizes of the mesh axes. One size may be -1: it takes the devices left over.

    ``dcn_*`` sizes split the axis across slices (multi-slice TPU); the total size of an
    axis is ``ici * dcn``. The defaults equal ``config_utils.base_config().mesh`` (the
    parallel layer cannot import it; tests/train/test_configs.py ties the two).
    """

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    dcn_data: int = 1
    dcn_fsdp: int = 1
    dcn_tensor: int = 1
    num_devices: int = -1  # use only the first N devices (-1: all)

    @classmethod
    def from_config(cls, cfg) -> MeshConfig:
        """From any mapping-like (dict, ml_collections.ConfigDict) with a subset of fields."""
        get = cfg.get if hasattr(cfg, "get") else lambda k, d: getattr(cfg, k, d)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(dict(cfg).keys()) - set(names)) if hasattr(cfg, "keys") else []
        if unknown:
            raise ConfigError(f"mesh config: unknown keys {unknown}; valid keys are {names}")
        return cls(**{n: int(get(n, getattr(cls, n))) for n in names})

    @classmethod
    def parse(cls, text: str) -> MeshConfig:
        """``"tensor=8"``, ``"data=2,tensor=4"`` (a command-line ``--mesh``) -> MeshConfig;
        axes not named keep their defaults (``data`` takes the devices left over)."""
        names = [f.name for f in dataclasses.fields(cls)]
        sizes = {}
        for part in (p.strip() for p in str(text).split(",")):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or key not in names:
                raise ConfigError(f"mesh {text!r}: {part!r} is not AXIS=SIZE with AXIS in {names}")
            try:
                sizes[key] = int(value)
            except ValueError:
                raise ConfigError(
                    f"mesh {text!r}: size {value!r} of {key} is not an integer"
                ) from None
        return cls(**sizes)


def resolve_sizes(sizes: Sequence[int], num_devices: int, what: str = "mesh") -> tuple[int, ...]:
    """Replace one -1 in ``sizes`` so that the product equals ``num_devices``."""
    sizes = [int(s) for s in sizes]
    if sum(s == -1 for s in sizes) > 1:
        raise ConfigError(f"{what}: at most one axis may be -1, got {sizes}")
    if any(s == 0 or s < -1 for s in sizes):
        raise ConfigError(f"{what}: axis sizes must be positive or -1, got {sizes}")
    known = math.prod(s for s in sizes if s != -1)
    if num_devices % known:
        raise ConfigError(
            f"{what}: axis sizes {sizes} (product {known}) do not divide the "
            f"{num_devices} available devices"
        )
    sizes = [num_devices // known if s == -1 else s for s in sizes]
    if math.prod(sizes) != num_devices:
        raise ConfigError(
            f"{what}: axis sizes {sizes} use {math.prod(sizes)} devices but "
            f"{num_devices} are available; set one axis to -1 or make the product match"
        )
    return tuple(sizes)


def make_mesh(cfg: MeshConfig | None = None, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds a ``Mesh`` with axes ``(data, fsdp, tensor)`` and ``AxisType.Auto``.

    With several slices (``dcn_*`` > 1) devices are arranged so that each DCN factor spans
    slices and the rest stays inside a slice (ICI).
    """
    cfg = cfg or MeshConfig()
    devices = list(devices if devices is not None else jax.devices())
    if cfg.num_devices > 0:
        if cfg.num_devices > len(devices):
            raise ConfigError(f"mesh: num_devices={cfg.num_devices} but {len(devices)} exist")
        devices = devices[: cfg.num_devices]
    dcn = (cfg.dcn_data, cfg.dcn_fsdp, cfg.dcn_tensor)
    num_slices = math.prod(dcn)
    if len(devices) % num_slices:
        raise ConfigError(f"mesh: {len(devices)} devices cannot form {num_slices} DCN slices")
    ici = resolve_sizes((cfg.data, cfg.fsdp, cfg.tensor), len(devices) // num_slices, "mesh")
    if num_slices > 1:
        arr = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices)
    else:
        try:
            arr = mesh_utils.create_device_mesh(ici, devices)
        except (ValueError, NotImplementedError, AssertionError):
            arr = np.asarray(devices).reshape(ici)
    return Mesh(arr, AXES, axis_types=(AxisType.Auto,) * len(AXES))
