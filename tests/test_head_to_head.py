"""ifanp.analysis.head_to_head and its table: what a neural process claims over a VAE, measured."""
import math

import torch

from ifanp import analysis, reporting
from ifanp.models import build


def _images(n=6, size=28):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, size, size, generator=g) > 0.7).float()


def test_head_to_head_measures_every_model_with_its_own_counts():
    torch.manual_seed(0)
    models = {"VAE": build("vae"), "IFNP": build("ifnp")}
    reg = {"mnist-vae": {"cpu_time_s": 90.0}}
    res = analysis.head_to_head(models, _images(), list(range(6)), samples=2, reg=reg,
                                names={"VAE": "mnist-vae", "IFNP": "mnist-ifnp"}, timing_batch=4)
    assert set(res) == {"VAE", "IFNP"}
    for label, model in models.items():
        row = res[label]
        assert set(row) == set(analysis.HEAD_TO_HEAD_MEASURES)
        assert row["parameters"] == sum(p.numel() for p in model.parameters())
        assert 0 <= row["ece_points"] <= 100 and 0 <= row["coverage_68"] <= 100
        assert math.isfinite(row["psnr_target_top"]) and row["ms_per_image"] > 0
    assert res["VAE"]["train_cpu_min"] == 1.5 and res["IFNP"]["train_cpu_min"] is None


def test_winner_follows_the_direction_of_each_measure():
    res = {"a": {"psnr_target_random": 20.0, "ece_points": 5.0, "coverage_68": 90.0, "train_cpu_min": None},
           "b": {"psnr_target_random": 19.0, "ece_points": 3.0, "coverage_68": 60.0, "train_cpu_min": 2.0}}
    assert analysis.head_to_head_winner(res, "psnr_target_random") == "a"  # higher is better
    assert analysis.head_to_head_winner(res, "ece_points") == "b"  # lower is better
    assert analysis.head_to_head_winner(res, "coverage_68") == "b"  # |60 - 68.3| < |90 - 68.3|
    assert analysis.head_to_head_winner(res, "train_cpu_min") is None  # one value missing
    res["b"]["psnr_target_random"] = 20.0
    assert analysis.head_to_head_winner(res, "psnr_target_random") is None  # a tie names no one


def test_table_and_summary_name_the_model_ahead():
    full = dict.fromkeys(analysis.HEAD_TO_HEAD_MEASURES, 1.0)
    res = {"VAE": {**full, "psnr_target_top": 12.0}, "IFANP": {**full, "psnr_target_top": 10.0}}
    html = reporting.head_to_head_html(res)
    assert "<td>VAE</td></tr>" in html.split("top half")[1].split("</tr>")[0] + "</tr>"
    summary = reporting.head_to_head_summary(res)
    assert "VAE on the missing-pixel PSNR, top half observed" in summary
    assert "neither on the parameters" in summary  # equal values: no one is ahead
