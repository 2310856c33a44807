#!/usr/bin/env bash
# Fine-tune → evaluate → gate on a real model (SmolLM2-135M-Instruct), end to end:
#   1. train a LoRA adapter on MedMCQA rows the evaluation does not score (train_lora.py; it proves that);
#   2. evalmon run suites/medical.yaml for the base model and for base + adapter, same documents;
#   3. evalmon compare and evalmon gate (paired tests, Holm) between them, then which answers each model picks
#      (predictions.py); this script exits with the gate's code.
#
#   examples/finetune-gate/run.sh [OUT]          # default OUT: reports/finetune-gate
#
# Environment (defaults in brackets): STEPS [200] training steps, BATCH [8], LIMIT [300] documents per task,
# TASKS [medmcqa,medqa,pubmedqa], THREADS [2] torch threads for training and evaluation, BASE [evalmon's
# converted SmolLM2-135M-Instruct], EVAL_FLAGS [--no-tracking; set it empty to log both runs to MLflow],
# PYTHON [python], EVALMON [evalmon].
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$(mkdir -p "${1:-$REPO/reports/finetune-gate}" && cd "${1:-$REPO/reports/finetune-gate}" && pwd)
PYTHON=${PYTHON:-python}
EVALMON=${EVALMON:-evalmon}
STEPS=${STEPS:-200}
BATCH=${BATCH:-8}
LIMIT=${LIMIT:-300}
TASKS=${TASKS:-medmcqa,medqa,pubmedqa}
THREADS=${THREADS:-2}
EVAL_FLAGS=${EVAL_FLAGS---no-tracking}
export OMP_NUM_THREADS=$THREADS TOKENIZERS_PARALLELISM=false

step() { printf '\n== %s  [%s]\n' "$1" "$(date +%H:%M:%S)"; }
newest_run() { find "$1" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | sort | tail -n 1; }

if [[ -z "${BASE:-}" ]]; then
  BASE=$($PYTHON -c 'from evalmon.checkpoints.real import ensure_checkpoint as e; print(e("smollm2-135m-instruct"))')
fi
ADAPTER="$OUT/adapter"

step "1/4 train a LoRA adapter ($STEPS steps, batch $BATCH) on MedMCQA rows outside the evaluated $LIMIT"
$PYTHON "$HERE/train_lora.py" --base "$BASE" --out "$ADAPTER" --suite "$REPO/suites/medical.yaml" \
  --eval-limit "$LIMIT" --steps "$STEPS" --batch-size "$BATCH" --threads "$THREADS"

step "2/4 evaluate the base model"
# shellcheck disable=SC2086  # EVAL_FLAGS is a list of flags
$EVALMON run "$REPO/suites/medical.yaml" --model "hf:$BASE" --tasks "$TASKS" --limit "$LIMIT" \
  --output "$OUT/base" $EVAL_FLAGS
step "3/4 evaluate base + adapter"
# shellcheck disable=SC2086
$EVALMON run "$REPO/suites/medical.yaml" --model "hf:$BASE,adapter=$ADAPTER" --tasks "$TASKS" --limit "$LIMIT" \
  --output "$OUT/candidate" $EVAL_FLAGS
BASE_RUN=$(newest_run "$OUT/base")
CAND_RUN=$(newest_run "$OUT/candidate")

step "4/4 compare and gate: baseline $BASE_RUN, candidate $CAND_RUN"
$EVALMON compare "$BASE_RUN" "$CAND_RUN" --format md -o "$OUT/compare.md"
set +e
$EVALMON gate --baseline "$BASE_RUN" --candidate "$CAND_RUN" --policy "$HERE/gates.yaml" \
  --json "$OUT/gate.json" --markdown "$OUT/gate.md"
code=$?
set -e
printf '\nwhat the models pick (a paired p-value says a change is real, not what it is):\n'
$PYTHON "$HERE/predictions.py" "$BASE_RUN" "$CAND_RUN" --json "$OUT/predictions.json"
printf '\ngate exit code %s (0 pass, 1 regression, 2 error); gate.json, gate.md, compare.md, predictions.json in %s\n' \
  "$code" "$OUT"
exit "$code"
