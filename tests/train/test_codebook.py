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


def test_reseeding_prefers_the_worst_fitted_latents():
    """Dead codes go to the latents farthest from the codebook, not to the common ones.
    Mutation caught: uniform picks (``order`` a random permutation)."""
    tracker = CodebookTracker(4, decay=0.5)
    for _ in range(10):
        tracker.update(jnp.array([0, 0, 0, 0]))  # codes 1..3 dead
    codebook = jnp.zeros((4, 2))
    common = jnp.zeros((60, 2)) + 0.01  # well fitted by code 0
    rare = jnp.array([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]])
    latents = jnp.concatenate([common, rare])
    new, n = tracker.reseed(codebook, latents, jax.random.key(0), 0.5)
    assert int(n) == 3
    assert {tuple(np.asarray(r)) for r in new[1:]} == {tuple(np.asarray(r)) for r in rare}


def test_farthest_point_codebook_covers_every_distinct_latent_first():
    """Mutation caught: ``argmin`` for ``argmax`` (the nearest point, a duplicate)."""
    from liquid_jax.train.codebook import farthest_point_codebook

    distinct = jnp.arange(10, dtype=jnp.float32).reshape(5, 2) * 3.0
    latents = jnp.concatenate([jnp.repeat(distinct[:1], 40, axis=0), distinct[1:], distinct])
    book = np.asarray(farthest_point_codebook(latents, 5, jax.random.key(1)))
    assert {tuple(r) for r in book} == {tuple(r) for r in np.asarray(distinct)}
