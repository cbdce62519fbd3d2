"""``configs/demo.py``'s variants: ``long`` is the default with 3x the training steps."""

from configs.demo import get_config

TRAINED = (("vqgan", "vqgan"), ("base", "base_lm"), ("liquid", "liquid"))


def test_long_triples_every_training_stage_and_its_planned_time():
    default, long = get_config(""), get_config("long")
    for section, stage in TRAINED:
        assert long[section].total_steps == 3 * default[section].total_steps
        assert long.budget_s[stage] == 3 * default.budget_s[stage]
    # Everything else is the same recipe.
    assert long.liquid.optim.to_dict() == default.liquid.optim.to_dict()
    assert long.world.to_dict() == default.world.to_dict()
    assert long.eval.to_dict() == default.eval.to_dict()
    untouched = set(default.budget_s) - {stage for _, stage in TRAINED}
    assert all(long.budget_s[k] == default.budget_s[k] for k in untouched)
