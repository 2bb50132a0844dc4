#!/usr/bin/env python
"""Record the weights' sha256 in a ``reproduce`` table written before tables recorded it, where git proves it.

    python tools/record_weights_sha.py results/mnist/table.json

``python -m ifanp reproduce --update`` measures again every seed whose weights' sha256 the table does not
record. A table written before it recorded them (its rows have no ``weights_sha256``) would therefore be
measured again in full. This tool adds the sha256 of a seed's weights to such a row only where git shows that
the row describes those weights: the table file is committed and unchanged in the work tree, the weights file
was already committed in the commit that last wrote the table, and it is the same file in that commit, in HEAD
and in the work tree (export never replaces weights under an existing name without ``--force``, and a forced
export shows as a change here). The sha256 is then read from the file itself and checked against the
registry. Every other row is left as it was, and the tool says why. Each row it completes says so in
``weights_sha256_from`` (the commit).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ifanp.baselines import BASELINES  # noqa: E402
from ifanp.pretrained import WEIGHTS_DIR, pretrained_name, registry, sha256_of  # noqa: E402


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    table_path = Path(argv[0]).resolve()
    if not table_path.is_file() or not table_path.is_relative_to(ROOT):
        print(f"record_weights_sha: {argv[0]} is not a file of this repository; pass e.g. results/mnist/table.json.",
              file=sys.stderr)
        return 2
    rel = table_path.relative_to(ROOT).as_posix()
    commit = git("log", "-1", "--format=%H", "--", rel).stdout.strip()
    if not commit or git("diff", "--quiet", "HEAD", "--", rel).returncode != 0:
        print(f"record_weights_sha: {rel} must be committed and unchanged since; commit it first.", file=sys.stderr)
        return 1
    table = json.loads(table_path.read_text())
    reg = registry()
    done = 0
    for row in table["rows"]:
        model = row["model"]
        if model in BASELINES or row.get("weights_sha256"):
            continue
        shas = {}
        for seed in row.get("per_seed", {}):
            name = pretrained_name(model, table["dataset"], int(seed))
            if name not in reg:
                print(f"  {model} seed {seed}: {name} is not in the registry now; left as it was")
                break
            path = (WEIGHTS_DIR / reg[name]["file"]).resolve().relative_to(ROOT).as_posix()
            same = (git("cat-file", "-e", f"{commit}:{path}").returncode == 0
                    and git("diff", "--quiet", commit, "HEAD", "--", path).returncode == 0
                    and git("diff", "--quiet", "HEAD", "--", path).returncode == 0)
            if not same:
                print(f"  {model} seed {seed}: {path} was not committed with the table or changed since; left as it was")
                break
            sha = sha256_of(ROOT / path)
            if sha != reg[name]["sha256"]:
                print(f"  {model} seed {seed}: {path} does not match the registry's sha256; left as it was")
                break
            shas[seed] = sha
        else:
            row["weights_sha256"] = shas
            row["weights_sha256_from"] = f"git: weights unchanged since {commit[:12]}, which wrote this table"
            done += 1
            print(f"  {model}: seeds {', '.join(shas)} recorded")
    table_path.write_text(json.dumps(table, indent=2) + "\n")
    print(f"record_weights_sha: {done} rows completed in {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
