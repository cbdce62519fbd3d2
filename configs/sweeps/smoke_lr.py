"""The smallest sweep: two learning rates of the smoke config (two runs, ~30 s on a CPU).

    python launch/sweep.py --config configs/smoke.py:steps=20 \\
        --sweep configs/sweeps/smoke_lr.py --workdir /tmp/liquid_sweep_lr
"""

from launch.sweep_spec import product, sweep


def get_sweep():
    return product(
        sweep("config.optim.lr", [1e-3, 3e-3]),
        {"config.eval_every_steps": 10, "config.eval_steps": 2},  # fixed for every run
    )
