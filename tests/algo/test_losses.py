from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srpo.algo.losses import (
    awr_weights,
    entropy_bonus,
    kl_penalty,
    masked_aggregate,
    ppo_clip_loss,
    weighted_nll_loss,
)


def test_ppo_three_trajectories_by_hand():
    # Three sequences of two tokens; ratios chosen to hit: inside the range, clipped high, clipped low.
    ratios = torch.tensor([[1.1, 0.9], [1.5, 1.0], [0.5, 0.7]])
    old = torch.zeros(3, 2)
    new = torch.log(ratios).requires_grad_(True)
    adv = torch.tensor([1.0, 2.0, -1.0])
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    out = ppo_clip_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.28)
    # Per token −min(r·A, clip(r)·A):
    #   seq0 (A=1): 1.1 → −1.1; 0.9 → −0.9
    #   seq1 (A=2): 1.5 → clip 1.28 → −2.56; (masked)
    #   seq2 (A=−1): 0.5 → max(0.5, 0.8) = 0.8; 0.7 → max(0.7, 0.8) = 0.8
    expected = (-1.1 - 0.9 - 2.56 + 0.8 + 0.8) / 5
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    # Clipped (gradient-free) tokens: 1.5 with A>0, 0.5 and 0.7 with A<0 → 3 of 5.
    assert out.clip_fraction.item() == pytest.approx(3 / 5)
    kl = [r - 1 - math.log(r) for r in (1.1, 0.9, 1.5, 0.5, 0.7)]
    assert out.approx_kl.item() == pytest.approx(sum(kl) / 5, rel=1e-5)
    out.loss.backward()
    # Only unclipped, unmasked tokens get gradient: d(−r·A)/d log r = −r·A.
    expected_grad = torch.tensor([[-1.1, -0.9], [0.0, 0.0], [0.0, 0.0]]) / 5
    torch.testing.assert_close(new.grad, expected_grad)


def test_seq_mean_token_mean_aggregation():
    values = torch.tensor([[1.0, 3.0], [10.0, 0.0], [5.0, 5.0]])
    mask = torch.tensor([[True, True], [True, False], [False, False]])
    assert masked_aggregate(values, mask, "token-mean").item() == pytest.approx(14 / 3)
    assert masked_aggregate(values, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 10) / 2)
    with pytest.raises(ValueError, match="aggregation"):
        masked_aggregate(values, mask, "sum")  # type: ignore[arg-type]


def test_traj_mean_token_mean_weighs_every_trajectory_the_same():
    # Trajectory A: rows 0 and 1, 3 executed tokens (values 1, 2 | 3), mean 2. Trajectory B: row 2, 1 executed
    # token (value 9), mean 9. Row 3 belongs to a trajectory with no executed token (weight 0).
    values = torch.tensor([[1.0, 2.0], [3.0, 100.0], [9.0, 100.0], [100.0, 100.0]])
    mask = torch.tensor([[True, True], [True, False], [True, False], [False, False]])
    row_weights = torch.tensor([1 / 3, 1 / 3, 1.0, 0.0])
    assert masked_aggregate(values, mask, "traj-mean-token-mean", row_weights).item() == pytest.approx((2 + 9) / 2)
    assert masked_aggregate(values, mask, "token-mean").item() == pytest.approx(15 / 4)  # A's 3 tokens outweigh B
    assert masked_aggregate(values, torch.zeros_like(mask), "traj-mean-token-mean", row_weights).item() == 0.0
    with pytest.raises(ValueError, match="needs row_weights"):
        masked_aggregate(values, mask, "traj-mean-token-mean")
    with pytest.raises(ValueError, match=r"row_weights \(3,\) must be \(B,\) with B=4"):
        masked_aggregate(values, mask, "traj-mean-token-mean", row_weights[:3])


def test_token_mean_loss_pushes_down_when_failures_are_longer():
    """At ratio 1 the PPO loss is −(aggregated advantage). A success of 1 token (A = +1) and a failure of 3 tokens
    (A = −1), centred per trajectory: token-mean sees −0.5 and so pushes the sampled tokens down as a whole;
    traj-mean-token-mean sees 0."""
    log_probs = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    adv = torch.tensor([1.0, -1.0])
    token = ppo_clip_loss(log_probs, log_probs.detach(), adv, mask, aggregation="token-mean")
    traj = ppo_clip_loss(log_probs, log_probs.detach(), adv, mask, aggregation="traj-mean-token-mean",
                         row_weights=torch.tensor([1.0, 1 / 3]))
    assert token.loss.item() == pytest.approx(0.5)
    assert traj.loss.item() == pytest.approx(0.0, abs=1e-7)
    traj.loss.backward()
    assert log_probs.grad is not None
    # d loss / d log π = −A · weight / Σ weight: −1/2 on the success's token, +1/6 on each failure token.
    torch.testing.assert_close(log_probs.grad, torch.tensor([[-0.5, 0.0, 0.0], [1 / 6, 1 / 6, 1 / 6]]))


def test_dual_clip_bounds_negative_advantage_loss():
    new = torch.log(torch.tensor([[5.0]]))
    old = torch.zeros(1, 1)
    mask = torch.ones(1, 1, dtype=torch.bool)
    adv = torch.tensor([-1.0])
    plain = ppo_clip_loss(new, old, adv, mask)
    assert plain.loss.item() == pytest.approx(5.0)
    dual = ppo_clip_loss(new, old, adv, mask, dual_clip=3.0)
    assert dual.loss.item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="dual_clip"):
        ppo_clip_loss(new, old, adv, mask, dual_clip=0.5)


def test_log_ratio_clamp_keeps_loss_finite():
    new = torch.tensor([[100.0]])
    out = ppo_clip_loss(new, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1, dtype=torch.bool))
    assert torch.isfinite(out.loss)
    assert out.loss.item() == pytest.approx(math.exp(20.0), rel=1e-4)


def test_fully_masked_batch_gives_zero_loss():
    new = torch.zeros(2, 3, requires_grad=True)
    out = ppo_clip_loss(new, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3, dtype=torch.bool))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert new.grad is not None and torch.all(new.grad == 0)


def test_shape_errors():
    with pytest.raises(ValueError, match="same"):
        ppo_clip_loss(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="advantages"):
        ppo_clip_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3, dtype=torch.bool))
    # Per-token advantages of the wrong (B, L) shape name both shapes.
    with pytest.raises(ValueError, match=r"advantages \(2, 2\) must be \(B,\) or \(B, L\) = \(2, 3\)"):
        ppo_clip_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"values \(2, 3\) and mask \(3, 2\)"):
        masked_aggregate(torch.zeros(2, 3), torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"log_probs \(2, 3\) and ref_log_probs \(2, 4\) differ"):
        kl_penalty(torch.zeros(2, 3), torch.zeros(2, 4))


@pytest.mark.parametrize("clip_low, clip_high", [(-0.1, 0.28), (0.2, -0.01)])
def test_negative_clip_range_is_refused(clip_low: float, clip_high: float) -> None:
    # A negative clip range would flip the clip interval and silently reverse which ratios get clipped.
    with pytest.raises(ValueError, match=f"clip_low={clip_low}, clip_high={clip_high}"):
        ppo_clip_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2, dtype=torch.bool),
                      clip_low=clip_low, clip_high=clip_high)


def test_zero_clip_range_is_allowed_and_clips_every_moved_ratio() -> None:
    # ε = 0 is the edge of the valid range: any ratio away from 1 on the advantage's side is clipped.
    out = ppo_clip_loss(torch.full((1, 2), 0.1), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2, dtype=torch.bool),
                        clip_low=0.0, clip_high=0.0)
    assert out.loss.item() == pytest.approx(-1.0)
    assert out.clip_fraction.item() == pytest.approx(1.0)


def test_kl_estimators_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.2]]))
    ref = torch.log(torch.tensor([[0.25, 0.4]]))
    k1 = kl_penalty(logp, ref, "k1")
    torch.testing.assert_close(k1, torch.log(torch.tensor([[2.0, 0.5]])))
    k3 = kl_penalty(logp, ref, "k3")
    # ρ = π_ref/π: 0.5 and 2 → ρ − log ρ − 1.
    expected = torch.tensor([[0.5 - math.log(0.5) - 1, 2.0 - math.log(2.0) - 1]])
    torch.testing.assert_close(k3, expected)
    assert (k3 >= 0).all()
    with pytest.raises(ValueError, match="estimator"):
        kl_penalty(logp, ref, "k2")  # type: ignore[arg-type]


def test_k3_is_unbiased_estimate_of_kl():
    torch.manual_seed(0)
    p = torch.tensor([0.7, 0.2, 0.1])
    q = torch.tensor([0.4, 0.4, 0.2])
    samples = torch.multinomial(p, 200_000, replacement=True)
    est = kl_penalty(torch.log(p[samples])[None], torch.log(q[samples])[None], "k3").mean().item()
    exact = float((p * (p / q).log()).sum())
    assert est == pytest.approx(exact, abs=5e-3)


def test_entropy_bonus_masks():
    ent = torch.tensor([[1.0, 2.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    assert entropy_bonus(ent, mask).item() == pytest.approx(1.5)


def test_awr_weights_clip():
    w = awr_weights(torch.tensor([0.0, 1.0, 100.0, -2.0]), beta=0.5, max_weight=20.0)
    torch.testing.assert_close(w, torch.tensor([1.0, math.exp(2.0), 20.0, math.exp(-4.0)]))
    with pytest.raises(ValueError, match="beta"):
        awr_weights(torch.zeros(1), beta=0.0)
    with pytest.raises(ValueError, match=r"max_weight must be > 0, got 0\.0"):
        awr_weights(torch.zeros(1), beta=1.0, max_weight=0.0)


def test_weighted_nll_refuses_misaligned_or_bad_weights() -> None:
    log_probs, mask = torch.zeros(3, 2), torch.ones(3, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"log_probs \(3, 2\) and mask \(2, 2\)"):
        weighted_nll_loss(log_probs, mask[:2], torch.ones(3))
    with pytest.raises(ValueError, match=r"weights \(2,\) must be \(B,\) with B=3"):
        weighted_nll_loss(log_probs, mask, torch.ones(2))
    for bad in (torch.tensor([1.0, -0.5, 1.0]), torch.tensor([1.0, float("nan"), 1.0]),
                torch.tensor([1.0, float("inf"), 1.0])):
        with pytest.raises(ValueError, match="finite and >= 0"):
            weighted_nll_loss(log_probs, mask, bad)


def test_every_aggregation_implementation_refuses_an_unknown_mode_with_one_message() -> None:
    # The loss, the logged net advantage and the data-parallel shard weights implement `Aggregation` each; a mode
    # one of them does not know gets the same error, which lists every valid mode.
    from srpo.algo.advantages import loss_weighted_advantage_mean
    from srpo.distributed.learner import shard_weights
    from srpo.types import unknown_aggregation

    expected = str(unknown_aggregation("sum"))
    assert all(mode in expected for mode in ("'token-mean'", "'seq-mean-token-mean'", "'traj-mean-token-mean'"))
    mask = np.ones((2, 3), dtype=bool)
    calls = [
        lambda: masked_aggregate(torch.ones(2, 3), torch.from_numpy(mask), "sum"),  # type: ignore[arg-type]
        lambda: loss_weighted_advantage_mean(np.ones(2), np.ones(2), np.ones(2), "sum"),  # type: ignore[arg-type]
        lambda: shard_weights(mask, [np.array([0]), np.array([1])], "sum"),
    ]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == expected
