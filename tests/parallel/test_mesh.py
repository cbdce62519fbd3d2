import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from liquid_jax.parallel import (
    MeshConfig,
    axis_rules,
    create_sharded,
    host_local_to_global,
    logical_to_mesh,
    make_mesh,
)
from liquid_jax.parallel.mesh import resolve_sizes


def test_minus_one_takes_the_rest(cpu_devices):
    mesh = make_mesh(MeshConfig(data=-1, fsdp=2, tensor=2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize(
    "sizes, match",
    [((3, 1, 1), "do not divide the 8"), ((2, 2, 1), "use 4 devices but 8"), ((-1, -1, 1), "one")],
)
def test_bad_mesh_sizes_are_named(sizes, match):
    with pytest.raises(ValueError, match=match):
        resolve_sizes(sizes, 8)


def test_mesh_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys \\['model'\\]"):
        MeshConfig.from_config({"data": 2, "model": 4})


def test_logical_rules_skip_missing_and_reused_axes():
    assert logical_to_mesh(("batch", "length", "embed"), ("data", "fsdp", "tensor")) == P(
        ("data", "fsdp"), None, None
    )
    assert logical_to_mesh(("embed", "mlp"), ("data", "tensor")) == P(None, "tensor")
    with axis_rules([("embed", "tensor"), ("mlp", "tensor")]):
        assert logical_to_mesh(("embed", "mlp")) == P("tensor", None)
    with pytest.raises(KeyError, match="'nope'"):
        logical_to_mesh(("nope",))


class _Two(nnx.Module):
    def __init__(self, rngs):
        init = nnx.with_partitioning(nnx.initializers.normal(), ("embed", "mlp"))
        self.w = nnx.Param(init(rngs.params(), (8, 16)))
        self.b = nnx.Param(np.zeros((16,), np.float32))


def test_create_sharded_places_params_and_matches_unsharded(cpu_devices):
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    sharded = create_sharded(lambda: _Two(nnx.Rngs(3)), mesh)
    plain = _Two(nnx.Rngs(3))
    assert sharded.w[...].sharding.spec == P("fsdp", "tensor")
    assert sharded.b[...].sharding.spec == P()
    np.testing.assert_allclose(np.asarray(sharded.w[...]), np.asarray(plain.w[...]), atol=1e-7)


def test_host_local_to_global_shards_batch(cpu_devices):
    mesh = make_mesh(MeshConfig(data=4, fsdp=2))
    x = np.arange(16 * 3).reshape(16, 3)
    g = host_local_to_global({"x": x}, mesh)["x"]
    assert g.shape == (16, 3) and g.sharding.spec == P(("data", "fsdp"), None)
    np.testing.assert_array_equal(np.asarray(g), x)
