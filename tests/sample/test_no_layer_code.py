"""``sample/`` generates with the model's own decoder (``DecodeModel.decode_step``): it
holds no copy of attention, masks, RoPE, residual wiring or the head. Mutation caught:
a decode step restated in ``sample/`` (it would import RoPE or the mask constant, merge
layer states or reach into a layer's sub-modules)."""

import ast
import pathlib

import liquid_jax.sample

SAMPLE = pathlib.Path(liquid_jax.sample.__file__).parent
# What a restated decoder needs from models/, and the layers' sub-modules it would call.
LAYER_NAMES = {
    "apply_rope", "rope_tables", "inverse_frequencies", "MASK_VALUE",
    "segment_causal_mask", "window_mask", "dot_product_attention", "write_layer",
    "DecoderLayer", "Attention",
}  # fmt: skip
LAYER_MODULES = {"liquid_jax.models.attention", "liquid_jax.models.rope",
                 "liquid_jax.models.attention_kernels", "liquid_jax.models.layers"}  # fmt: skip
SUBMODULES = {
    "self_attn", "mlp", "input_layernorm", "post_attention_layernorm",
    "pre_feedforward_layernorm", "post_feedforward_layernorm", "q_proj", "k_proj",
    "v_proj", "o_proj", "layers", "lm_head",
}  # fmt: skip


def _findings(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.module in LAYER_MODULES:
                found.append(f"imports {node.module}")
            found += [f"imports {a.name}" for a in node.names if a.name in LAYER_NAMES]
        elif isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name in LAYER_MODULES]
        elif isinstance(node, ast.Attribute) and node.attr in SUBMODULES:
            found.append(f"uses .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in LAYER_NAMES:
            found.append(f"names {node.id}")
    return found


def test_sample_defines_no_transformer_layer_code():
    found = {p.name: f for p in sorted(SAMPLE.rglob("*.py")) if (f := _findings(p))}
    assert found == {}, "sample/ restates decoder code; call DecodeModel.decode_step"


def test_the_check_catches_a_restated_step(tmp_path):
    copy = tmp_path / "step.py"
    copy.write_text(
        "from liquid_jax.models.rope import apply_rope\n"
        "def step(layer, x):\n    return x + layer.self_attn(layer.input_layernorm(x))\n"
    )
    assert len(_findings(copy)) >= 3
