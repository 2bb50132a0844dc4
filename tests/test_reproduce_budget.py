"""The training-budget line of the reproduction's protocol differences follows the runs it describes."""
from ifanp.reproduce import PROTOCOL_DIFFERENCES, protocol_differences, training_budget


def test_a_shared_budget_and_a_longer_run_of_ours_are_both_named():
    budgets = {"ifnp": [(3000, 3.2), (3000, 3.2)], "ifanp": [(3000, 3.2)], "vae": [(3000, 3.2)],
               "ifanp-plus": [(6000, 6.4)]}
    text = training_budget(budgets)
    assert "IFNP, IFANP (the ablation) and VAE (the baselines) share one budget, 3,000 steps (3.2 epochs)" in text
    assert "IFANP+ (ours) trains longer, 6,000 steps (6.4 epochs)" in text


def test_different_budgets_are_listed_per_model_not_called_shared():
    text = training_budget({"ifnp": [(3000, 3.2)], "np": [(300, 0.3)]})
    assert "share one budget" not in text
    assert "IFNP 3,000 steps" in text and "NP 300 steps" in text


def test_the_budget_line_comes_first_then_the_fixed_differences():
    lines = protocol_differences({"ifnp": [(3000, None)]})
    assert lines[0].startswith("Training budget:") and lines[1:] == PROTOCOL_DIFFERENCES
