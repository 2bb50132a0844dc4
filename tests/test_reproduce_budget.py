"""The training-budget line of the reproduction's protocol differences follows the runs it describes."""
import re

from ifanp.reproduce import PROTOCOL_DIFFERENCES, protocol_differences, training_budget


def test_a_shared_budget_and_a_longer_run_of_ours_are_both_named():
    budgets = {"ifnp": [(3000, 3.2), (3000, 3.2)], "ifanp": [(3000, 3.2)], "vae": [(3000, 3.2)],
               "ifanp-plus": [(6000, 6.4)]}
    text = training_budget(budgets)
    shared, longer = text.split("IFANP+ (ours)", 1)
    # the shared budget once, with every model that has it; ours with its own, longer one
    assert shared.count("3,000 steps") == 1 and "3.2 epochs" in shared and "share one budget" in shared
    assert all(label in shared for label in ("IFNP", "IFANP", "VAE"))
    assert "6,000 steps" in longer and "6.4 epochs" in longer and "3,000" not in longer


def test_different_budgets_are_listed_per_model_not_called_shared():
    text = training_budget({"ifnp": [(3000, 3.2)], "np": [(300, 0.3)]})
    assert "share one budget" not in text
    # each model beside its own number of steps
    steps = dict(re.findall(r"\b(IFNP|NP) ([\d,]+) steps", text))
    assert steps == {"IFNP": "3,000", "NP": "300"}


def test_the_budget_line_comes_first_then_the_fixed_differences():
    lines = protocol_differences({"ifnp": [(3000, None)]})
    assert lines[0].startswith("Training budget:") and lines[1:] == PROTOCOL_DIFFERENCES


def test_the_faithful_configurations_get_a_budget_line_of_their_own():
    budgets = {"ifnp": [(3000, 3.2)], "ifanp": [(3000, 3.2)], "ifnp-full": [(3000, 0.8)],
               "ifanp-full": [(3000, 0.8)]}
    text = training_budget(budgets)
    shared, faithful = text.split("the faithful configurations", 1)
    assert "share one budget, 3,000 steps (3.2 epochs)" in shared and "faithful" not in shared
    assert "IFNP faithful, IFANP faithful" in faithful and "0.8 epochs" in faithful and "3.2" not in faithful
