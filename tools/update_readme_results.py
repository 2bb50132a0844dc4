"""Copy the reproduction table written by `python -m ifanp reproduce --dataset mnist` into README.md.

    .venv/bin/python -m ifanp reproduce --dataset mnist     # writes results/mnist/table.md (+ .json)
    .venv/bin/python tools/update_readme_results.py         # replaces the README's results block

The README's numbers are therefore never typed by hand: they are the command's output, copied.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def main() -> int:
    table_json = ROOT / "results" / "mnist" / "table.json"
    if not table_json.is_file():
        print("results/mnist/table.json is missing: run `python -m ifanp reproduce --dataset mnist` first.",
              file=sys.stderr)
        return 1
    from ifanp.reproduce import (ABLATION, ablation_order_checks, checks_markdown, comparison_markdown, faithful_view,
                                 has_faithful)

    table = json.loads(table_json.read_text())
    checks = []
    if all(m in {r["model"] for r in table["rows"]} for m in ABLATION):
        checks = ["", "The paper's claims about its ablation (SPEC 7), each required at every ratio; ours decided on "
                  "the mean over each model's seeds, then again for every combination of one seed per model:", "",
                  checks_markdown(ablation_order_checks(table)).rstrip()]
    if has_faithful(table):
        checks += ["", "The same claims checked on the rows named faithful (every map at 28x28, ConvEncoder1 reading the "
                   "context's locations, SPEC 4.2's local pooling window; see the protocol differences):", "",
                   checks_markdown(ablation_order_checks(faithful_view(table))).rstrip()]
    block = "\n".join([
        START,
        f"Whole-image PSNR (dB, MAX = 1, mean over the {table['images']:,}-image MNIST evaluation subset) and the "
        "KL of Eq. 6, ours beside the paper's Table 1, as written by `python -m ifanp reproduce --dataset mnist` "
        "from the shipped weights (all metrics, the protocol differences, Fig. 8 and Fig. 9 data: "
        "[results/mnist/table.md](results/mnist/table.md)):",
        "",
        comparison_markdown(table).rstrip(),
        *checks,
        END,
    ])
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Results on MNIST\n\n" + block + "\n"
    readme.write_text(text)
    print(f"README.md: results block updated from {table_json.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
