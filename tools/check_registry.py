"""Check that every shipped image model still gives its registry PSNR (what ifanp/export.py recorded as
``psnr40_first1000_*``: ``ifanp.evaluate.evaluate`` at 40 % context on the first 1,000 evaluation images of the
model's own dataset, its registry entry's ``dataset``).

    IFANP_THREADS=1 python tools/check_registry.py [--models NAME ...] [--tolerance 1e-4] [--out results.json]

Prints one JSON line per model and exits with status 1 when any model is off by more than the tolerance (dB).
Entries without that registry figure (1-D models, the 32x32 NPF model) are skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from ifanp.data.splits import load_eval_images
from ifanp.evaluate import evaluate
from ifanp.pretrained import load_pretrained, registry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help="registry names (default: every image model)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |difference| in dB")
    parser.add_argument("--out", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = {}  # dataset -> its first 1,000 evaluation images and their indices, read once
    entries = registry()
    unknown = sorted(set(args.models or ()) - set(entries))
    if unknown:
        print(f"check_registry: not in the registry: {', '.join(unknown)}", file=sys.stderr)
        return 2
    results, worst = {}, 0.0
    for name, entry in entries.items():
        if args.models and name not in args.models:
            continue
        recorded = entry.get("psnr40_first1000_fp16" if entry.get("half") else "psnr40_first1000_fp32")
        if entry.get("family") != "image" or recorded is None:
            continue
        dataset = entry.get("dataset", "mnist")  # each model on the data it was trained and registered on
        if dataset not in data:
            images, indices = load_eval_images(dataset)
            data[dataset] = images[:1000], indices[:1000]
        start = time.time()
        res = evaluate(load_pretrained(name), *data[dataset], ratios=(0.4,), nll_samples=0, progress=False)
        psnr = res["ratios"]["0.4"]["psnr_whole"]
        results[name] = {"psnr40": psnr, "registry": recorded, "diff_dB": psnr - recorded,
                         "seconds": round(time.time() - start, 1)}
        worst = max(worst, abs(psnr - recorded))
        print(json.dumps({name: results[name]}), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    print(f"{len(results)} models, largest |difference| {worst:.2e} dB (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
