#!/usr/bin/env bash
# How the shipped MNIST and Fashion-MNIST weights were made (the Fashion runs need its data: apt-get install
# dataset-fashion-mnist, or the internet): every run of the table ifanp.recipes.RECIPES (model, seed, steps,
# options; `python -m ifanp.recipes` lists them) trained with `python -m ifanp train` on the 2-core CPU, one
# torch thread per run, two runs at a time, then copied into the package with `python -m ifanp export`
# (which records the command, wall and CPU time, and the training log in ifanp/weights/registry.json).
#
#   tools/train_pretrained.sh                              # all runs (hours on 2 cores); finished runs are skipped
#   JOBS=1 tools/train_pretrained.sh ifanp-s0 ifnp-s0      # only these runs (folder names of the table)
#
# A run interrupted for any reason continues where it stopped: every command uses --resume.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-2}

one() {  # one run: its folder, its registry name, then the arguments of python -m ifanp train
  local out=$1 reg=$2
  shift 2
  local name=${out##*/}
  if [ -f "$out/model.safetensors" ] && grep -q "\"$reg\"" ifanp/weights/registry.json 2>/dev/null \
     && grep -q "$out" ifanp/weights/registry.json; then
    echo "[$name] done already"; return 0
  fi
  echo "[$name] python -m ifanp train $*"
  IFANP_THREADS=1 $PY -m ifanp train "$@" --no-progress --resume > "$out.log" 2>&1 \
    || { echo "[$name] FAILED (see $out.log)"; return 1; }
  IFANP_THREADS=1 $PY -m ifanp export "$out" --name "$reg" >> "$out.log" 2>&1
  echo "[$name] $(tail -n 2 "$out.log" | head -n 1)"
}
export -f one
export PY

mkdir -p runs/pretrained
runs=$($PY -m ifanp.recipes "$@")  # fails (and says why) for a name that is not a run of the table
echo "$runs" | xargs -P "$JOBS" -L 1 bash -c 'one "$@"' _
