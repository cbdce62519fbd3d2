import jax
import jax.numpy as jnp
import numpy as np

from liquid_jax.train.codebook import CodebookTracker


def test_unused_codes_are_reseeded_from_latents_only_when_active():
    tracker = CodebookTracker(8, decay=0.5)
    for _ in range(10):
        tracker.update(jnp.array([0, 1, 2, 3, 0, 1, 2, 3]))  # codes 4..7 never used
    codebook = jnp.zeros((8, 2))
    latents = jnp.arange(20, dtype=jnp.float32).reshape(10, 2) + 100
    same, n = tracker.reseed(codebook, latents, jax.random.key(0), 0.1, active=False)
    assert int(n) == 0 and np.all(np.asarray(same) == 0)
    new, n = tracker.reseed(codebook, latents, jax.random.key(0), 0.1)
    new = np.asarray(new)
    assert int(n) == 4
    assert np.all(new[:4] == 0)
    assert all(any(np.array_equal(row, lat) for lat in np.asarray(latents)) for row in new[4:])
    # Re-seeded codes count as alive again: nothing more to re-seed right away.
    _, n = tracker.reseed(jnp.asarray(new), latents, jax.random.key(1), 0.1)
    assert int(n) == 0
