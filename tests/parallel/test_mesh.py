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


def test_fit_spec_replicates_dimensions_a_mesh_axis_does_not_divide(cpu_devices):
    from liquid_jax.parallel.sharding import fit_spec

    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    # One KV head (MQA) cannot be split over tensor=2; the other dims still are.
    assert fit_spec(P("fsdp", "tensor", None), (64, 1, 16), mesh) == P("fsdp", None, None)
    assert fit_spec(P(("data", "fsdp"), None), (6, 3), mesh) == P("data", None)


def test_mqa_model_creates_on_tensor_parallel_mesh(cpu_devices):
    from liquid_jax.models import Transformer, TransformerSpec

    spec = TransformerSpec.for_family(
        "gemma",
        vocab_size=100,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        head_dim=8,
        intermediate_size=64,
    )
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    model = create_sharded(lambda: Transformer(spec, rngs=nnx.Rngs(0)), mesh)
    tokens = np.arange(8, dtype=np.int32).reshape(2, 4)
    with jax.set_mesh(mesh):
        logits = nnx.jit(lambda m, t: m(t))(model, tokens)
    ref = Transformer(spec, rngs=nnx.Rngs(0))(tokens)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref), atol=1e-5)
