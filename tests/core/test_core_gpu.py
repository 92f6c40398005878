"""The core on CUDA gives the CPU's results (same math, device-agnostic code). Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

from sgcd.core.advantages import grpo_advantages
from sgcd.core.credit import credit_weights, reshape_advantages
from sgcd.core.divergence import token_entropy, topk_reverse_kl
from sgcd.core.losses import kl_k3, ppo_clip_loss, sd_replace_loss
from sgcd.core.sampling import mixed_groups


def _batch(device):
    g = torch.Generator().manual_seed(11)
    B, T = 8, 64
    student = -torch.rand(B, T, generator=g) * 3
    teacher = student + 0.3 * torch.randn(B, T, generator=g)
    mask = torch.rand(B, T, generator=g) > 0.2
    rewards = (torch.rand(B, generator=g) > 0.5).float()
    groups = torch.arange(B) // 4
    turns = torch.cumsum((torch.rand(B, T, generator=g) < 0.2).long(), -1)
    ent = torch.rand(B, T, generator=g) * 3
    return [x.to(device) for x in (student, teacher, mask, rewards, groups, turns, ent)]


def _run(device):
    student, teacher, mask, rewards, groups, turns, ent = _batch(device)
    adv, _ = grpo_advantages(rewards, groups)
    (keep, _), _ = mixed_groups(rewards > 0.5, groups)
    w, _ = credit_weights(teacher, student, adv, mask, turn_ids=turns, teacher_entropy=ent)
    ws, _ = credit_weights(teacher, student, adv, mask, shuffle=True,
                           generator=torch.Generator(device=device).manual_seed(0))  # fmt: skip
    ahat, _ = reshape_advantages(adv, w, mask)
    lp = (student + 0.1).requires_grad_()
    loss, _ = ppo_clip_loss(lp, student, ahat, mask)
    loss = loss + kl_k3(lp, teacher, mask)[0] + sd_replace_loss(lp, teacher, mask)[0]
    loss.backward()
    logits = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(1)).to(device)
    lsm = torch.log_softmax(logits, -1)
    top, ids = lsm.topk(3, -1)
    kl, _ = topk_reverse_kl(top, lsm.flip(-1).gather(-1, ids), torch.ones(2, 5, device=device))
    h, _ = token_entropy(logits, chunk_size=2)
    return [x.detach().cpu() for x in (adv, keep, w, ahat, loss, lp.grad, kl, h)], ws.cpu(), mask.cpu()


@pytest.mark.gpu
def test_cuda_matches_cpu():
    cpu, ws_cpu, mask = _run("cpu")
    gpu, ws_gpu, _ = _run("cuda")
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    # The shuffle draws from a CUDA generator there: a different permutation, the same multiset per row.
    for i in range(mask.shape[0]):
        torch.testing.assert_close(ws_gpu[i][mask[i]].sort().values, ws_cpu[i][mask[i]].sort().values)
