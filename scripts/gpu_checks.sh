#!/usr/bin/env bash
# The checks CI cannot run (it has no GPU), in one script for a CUDA machine:
#   1. the `gpu`-marked tests (core on CUDA = CPU; HFPolicy sampling log-probs on CUDA = score())
#   2. `sgcd bench rollout --device cuda`, float32 and bfloat16
#   3. `sgcd bench step --device cuda` at the default preset's shapes, and a larger bfloat16 batch
#   4. the trainer end to end on CUDA: every algorithm for 2 steps on the test-only coin domain (mixed groups, so
#      the update runs), float32 and bfloat16, then a 2-step run resumed to 4 steps against a straight 4-step run
#
#   bash scripts/gpu_checks.sh [OUT_DIR]           (JSON figures land in OUT_DIR, default /tmp/sgcd-gpu-checks)
#   SGCD_GPU_QUICK=1 bash scripts/gpu_checks.sh    (tiny model only: the tests, one bench, the trainer; ~2 min)
#   SGCD_GPU_DEVICE=cpu SGCD_GPU_QUICK=1 bash scripts/gpu_checks.sh   (a dry run of the script itself on CPU)
#
# Benchmark model: SGCD_GPU_MODEL (default smollm2-135m, which needs the project's set-up). On a machine without
# it, SGCD_GPU_ARCH=<model folder> benchmarks a randomly initialised model of that folder's architecture (its
# config.json and tokenizer; the weights are not read). Speed does not depend on the weights: every row
# generates a fixed number of tokens. docs/models.md and docs/training.md quote an H100 run.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-/tmp/sgcd-gpu-checks}
QUICK=${SGCD_GPU_QUICK:-0}
PY=${PYTHON:-python3}
DEV=${SGCD_GPU_DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false SGCD_GPU_DEVICE=$DEV
status=0
step() { echo; echo "== $*  [$SECONDS s]"; }
quiet() { grep -v -e "Loading weights" -e "Writing model shards"; }

"$PY" - <<'PY' || exit 1
import os, sys, torch, transformers
if os.environ["SGCD_GPU_DEVICE"] == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_checks: no CUDA GPU visible (torch.cuda.is_available() is False)")
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print("GPU", gpu, "| torch", torch.__version__, "| transformers", transformers.__version__)
PY

step "1. gpu-marked tests"
"$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests/core/test_core_gpu.py tests/policy/test_hf.py || status=1

MODEL=${SGCD_GPU_MODEL:-smollm2-135m}
if [ -n "${SGCD_GPU_ARCH:-}" ]; then
    MODEL="$OUT/random-arch-model"
    "$PY" - "$SGCD_GPU_ARCH" "$MODEL" <<'PY' 2>&1 | quiet
import shutil, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
src, dst = sys.argv[1:]
torch.manual_seed(0)
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.gguf"))
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src))
model.save_pretrained(dst)
print(f"random-init model of {src}'s architecture: {sum(p.numel() for p in model.parameters()):,} parameters")
PY
fi
[ "$QUICK" = 1 ] && MODEL=tiny

step "2. bench rollout on $DEV"
"$PY" -m sgcd.cli bench rollout --device "$DEV" --models "tiny,$MODEL" --repeats 3 \
    --json "$OUT/rollout_${DEV}_fp32.json" 2>&1 | quiet || status=1
if [ "$QUICK" != 1 ]; then
    "$PY" -m sgcd.cli bench rollout --device "$DEV" --dtype bfloat16 --models "$MODEL" --repeats 3 \
        --json "$OUT/rollout_${DEV}_bf16.json" 2>&1 | quiet || status=1

    step "3. bench step on $DEV"
    common=(--preset default --device "$DEV" "model.name=$MODEL" model.sft_warmstart=off --repeats 3)
    [ "$MODEL" = smollm2-135m ] && common=(--preset default --device "$DEV" --repeats 3)
    "$PY" -m sgcd.cli bench step "${common[@]}" --json "$OUT/step_${DEV}.json" 2>&1 | quiet || status=1
    "$PY" -m sgcd.cli bench step "${common[@]}" model.autocast=bfloat16 sampling.group_size=8 \
        sampling.groups_per_step=2 sampling.max_new_tokens=128 sampling.max_tokens=768 \
        --json "$OUT/step_${DEV}_large.json" 2>&1 | quiet || status=1
fi

step "4. the trainer on $DEV (coin test domain)"
"$PY" - "$OUT/runs" <<'PY' 2>&1 | quiet || status=1
import json, os, sys, time
sys.path.insert(0, "tests/trainer")
import coin_domain  # the test-only domain where the random tiny model produces mixed groups
from safetensors.torch import load_file
from sgcd.cli import main

coin_domain.register()
root = sys.argv[1]
coin = ["env.name=test-coin", "env.options={}", "model.train_layers=0", f"model.device={os.environ['SGCD_GPU_DEVICE']}", "eval.every=0"]


def train(out, *over, resume=False):
    if resume:  # the run folder holds its config; only the new step count is given
        rc = main(["train", "--resume", out, "--quiet", *over])
    else:
        rc = main(["train", "--preset", "smoke", "--out", out, "--quiet", *coin, *over])
    return rc, [json.loads(line) for line in open(f"{out}/metrics.jsonl")]

failed = False
for algo in ("grpo", "sgcd", "sd-replace", "sd-aux", "opd-advantage"):
    for dtype in ("none", "bfloat16"):
        t = time.perf_counter()
        rc, rows = train(f"{root}/{algo}-{dtype}", f"algorithm.name={algo}", f"model.autocast={dtype}", "steps=2")
        upd = [r for r in rows if "loss/total" in r]
        keys = ("loss/total", "policy/grad_norm", "credit/w_mean", "credit/w_std")
        shown = {k: round(upd[-1][k], 4) for k in keys if upd and k in upd[-1]}
        print(f"{algo:14s} {dtype:9s} rc={rc} {time.perf_counter() - t:5.1f}s updates={len(upd)} {shown}")
        failed |= rc != 0 or len(upd) != 2
train(f"{root}/full4", "checkpoint.every=2", "steps=4")
train(f"{root}/half", "checkpoint.every=2", "steps=2")
rc, _ = train(f"{root}/half", "steps=4", resume=True)
a, b = (load_file(f"{root}/{n}/final/model.safetensors") for n in ("full4", "half"))
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(f"resumed 2 -> 4 steps vs 4 straight: rc={rc}, max |weight difference| = {diff}")
sys.exit(1 if failed or rc != 0 or diff != 0.0 else 0)
PY

echo
if [ "$status" = 0 ]; then echo "gpu_checks: OK ($SECONDS s; figures in $OUT)"; else echo "gpu_checks: FAILED"; fi
exit "$status"
