#!/usr/bin/env bash
# A few SGCD steps of airline-lite inside verl on ONE GPU: the end-to-end check CI cannot run (no GPU, no vLLM).
#
# Needs, on the GPU machine: the verl extra and vLLM in the active Python (e.g. pip install -e '.[verl]' vllm,
# with the vLLM build verl 0.9.x supports for your CUDA), and a small chat model in the local HF cache or a local
# folder (sgcd never downloads models at run time).
#
#   bash scripts/verl_gpu_smoke.sh                                   # Qwen/Qwen2.5-0.5B-Instruct, 3 steps
#   SGCD_SMOKE_MODEL=/models/qwen2.5-0.5b SGCD_SMOKE_STEPS=5 bash scripts/verl_gpu_smoke.sh [hydra overrides...]
#
# Passes when verl finishes the steps and every step logged SGCD's metrics (sgcd/credit/..., written by the
# trainer mode `sgcd`); the log is $SGCD_SMOKE_DIR/train.log.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python}
MODEL=${SGCD_SMOKE_MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
STEPS=${SGCD_SMOKE_STEPS:-3}
DIR=${SGCD_SMOKE_DIR:-/tmp/sgcd-verl-smoke}
mkdir -p "$DIR"

"$PY" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("verl_gpu_smoke: no CUDA GPU visible (torch.cuda.is_available() is False)")
try:
    import vllm  # noqa: F401
except ImportError as exc:
    sys.exit(f"verl_gpu_smoke: vLLM is not installed ({exc}); pip install vllm (a build matching verl 0.9.x)")
import verl
from sgcd.integrations.verl import check_verl_version
print("verl", check_verl_version(), "| torch", torch.__version__, "| GPU", torch.cuda.get_device_name(0))
PY

"$PY" -m sgcd.integrations.verl.data --env airline-lite --out "$DIR" --limit-train 64 --limit-val 8

export HYDRA_FULL_ERROR=1 VLLM_USE_V1=1
"$PY" -m verl.trainer.main_ppo --config-path "$PWD/configs/verl" --config-name airline-lite \
    data.train_files="$DIR/train.parquet" data.val_files="$DIR/val.parquet" \
    data.train_batch_size=4 data.max_prompt_length=3072 data.max_response_length=2048 \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.actor.ppo_mini_batch_size=4 actor_rollout_ref.actor.ppo_max_token_len_per_gpu=10240 \
    actor_rollout_ref.rollout.n=4 actor_rollout_ref.rollout.gpu_memory_utilization=0.4 \
    actor_rollout_ref.rollout.multi_turn.max_assistant_turns=6 actor_rollout_ref.rollout.agent.num_workers=1 \
    algorithm.filter_groups.enable=false \
    trainer.nnodes=1 trainer.n_gpus_per_node=1 trainer.total_training_steps="$STEPS" \
    trainer.val_before_train=false trainer.test_freq=-1 trainer.save_freq=-1 'trainer.logger=[console]' \
    trainer.project_name=sgcd trainer.experiment_name=sgcd-verl-smoke \
    trainer.default_local_dir="$DIR/checkpoints" "$@" 2>&1 | tee "$DIR/train.log"

steps=$(grep -c "sgcd/credit/w_mean" "$DIR/train.log" || true)
if [ "$steps" -lt "$STEPS" ]; then
    echo "verl_gpu_smoke: FAILED: $steps of $STEPS steps logged sgcd/credit metrics (see $DIR/train.log)" >&2
    exit 1
fi
echo "verl_gpu_smoke: OK: $STEPS SGCD steps on airline-lite (log: $DIR/train.log)"
grep -o "sgcd/[a-z_/]*w_mean:[^ ]*\|sgcd/reference/mixed_groups:[^ ]*\|critic/score/mean:[^ ]*" "$DIR/train.log" | tail -9
