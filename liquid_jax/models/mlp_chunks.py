"""The gated MLP a block of its intermediate features at a time (``model.mlp_chunk``).

``down(act(x @ gate) * (x @ up))`` splits exactly along the intermediate axis F: each
block of ``chunk`` features has its own gate/up columns and down rows, and the output is
the sum of the blocks' products. The custom VJP keeps only the input for the backward
pass and recomputes one block at a time there, so the [N, F] intermediates (at 7B sizes
4096 x 24576 per device, several of them in the backward) exist only [N, chunk] at a
time. Each block's weight gradients are their own slice of the whole gradient: nothing
of the weights' size is accumulated. Every block runs the same math as ``layers.MLP``
(its weights cast to the compute dtype in their own shards, their gradients summed over
the devices in the parameters' dtype); the output and the input gradient are summed over
the blocks in float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from liquid_jax.parallel import constrain

IN_NAMES = ("embed", "mlp")  # gate and up: [D, F]
OUT_NAMES = ("mlp", "embed")  # down: [F, D]


def activate(a: jax.Array, activation: str) -> jax.Array:
    """The gate's nonlinearity: GeGLU (tanh GELU) or SwiGLU (SiLU)."""
    return jax.nn.gelu(a, approximate=True) if activation == "gelu_tanh" else jax.nn.silu(a)


def block_size(features: int, at_most: int) -> int:
    """The largest divisor of ``features`` not above ``at_most``, a multiple of 128 (the
    accelerators' matmul tiles) when one is; 0 (no blocks) when ``at_most`` is 0 or
    covers all features. Qwen2.5-7B's 18944 = 2^9 * 37 in blocks of <= 2048: 512."""
    if not at_most or at_most >= features:
        return 0
    sizes = [c for c in range(1, at_most + 1) if features % c == 0]
    return max([c for c in sizes if c % 128 == 0] or sizes)


def _block_weights(gate_df, up_df, down_fd, start, chunk, dtype):
    """The block's gate/up columns and down rows ``[start, start + chunk)``, cast."""
    cut = lambda w, axis: jax.lax.dynamic_slice_in_dim(w, start, chunk, axis)  # noqa: E731
    return (
        constrain(cut(gate_df, 1).astype(dtype), IN_NAMES),
        constrain(cut(up_df, 1).astype(dtype), IN_NAMES),
        constrain(cut(down_fd, 0).astype(dtype), OUT_NAMES),
    )


def _block(x_nd, g_dc, u_dc, d_cd, activation):
    """One block's share of the output: dtype[N, C] intermediates -> dtype[N, D]."""
    return (activate(x_nd @ g_dc, activation) * (x_nd @ u_dc)) @ d_cd


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def gated_mlp_in_chunks(x_nd, gate_df, up_df, down_fd, activation: str, chunk: int):
    """x: dtype[N, D]; gate, up: [D, F] and down: [F, D] in any dtype (float32 master
    weights), F a multiple of ``chunk`` -> dtype[N, D]."""
    dtype = x_nd.dtype

    def add_block(i, out_nd):
        w = _block_weights(gate_df, up_df, down_fd, i * chunk, chunk, dtype)
        return out_nd + _block(x_nd, *w, activation).astype(jnp.float32)

    count = gate_df.shape[1] // chunk
    out = jax.lax.fori_loop(0, count, add_block, jnp.zeros(x_nd.shape, jnp.float32))
    return out.astype(dtype)


def _fwd(x_nd, gate_df, up_df, down_fd, activation, chunk):
    out = gated_mlp_in_chunks(x_nd, gate_df, up_df, down_fd, activation, chunk)
    return out, (x_nd, gate_df, up_df, down_fd)


def _bwd(activation, chunk, residuals, dy_nd):
    x_nd, gate_df, up_df, down_fd = residuals
    dtype = x_nd.dtype

    def grad_block(i, carry):
        dx_nd, dgate, dup, ddown = carry
        start = i * chunk
        w = _block_weights(gate_df, up_df, down_fd, start, chunk, dtype)
        _, vjp = jax.vjp(functools.partial(_block, activation=activation), x_nd, *w)
        dx, dg, du, dd = vjp(dy_nd)
        put = lambda acc, g, names, axis: jax.lax.dynamic_update_slice_in_dim(  # noqa: E731
            acc, constrain(g.astype(acc.dtype), names), start, axis
        )
        return (
            dx_nd + dx.astype(jnp.float32),
            put(dgate, dg, IN_NAMES, 1),
            put(dup, du, IN_NAMES, 1),
            put(ddown, dd, OUT_NAMES, 0),
        )

    zeros = lambda w, names: constrain(jnp.zeros(w.shape, w.dtype), names)  # noqa: E731
    init = (
        jnp.zeros(x_nd.shape, jnp.float32),
        zeros(gate_df, IN_NAMES),
        zeros(up_df, IN_NAMES),
        zeros(down_fd, OUT_NAMES),
    )
    count = gate_df.shape[1] // chunk
    dx, dgate, dup, ddown = jax.lax.fori_loop(0, count, grad_block, init)
    return dx.astype(dtype), dgate, dup, ddown


gated_mlp_in_chunks.defvjp(_fwd, _bwd)
