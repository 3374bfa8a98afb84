"""DoReFa binarisation: forward values by hand, STE gradients by rule and by finite differences."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.binary import (
    BinaryConv2d,
    BinaryLinear,
    binarize_activation,
    binarize_weight,
    is_binary,
)


def test_weight_forward_sign_times_mean_abs_with_sign0_positive():
    w = torch.tensor([[0.5, -1.0], [0.0, 2.5]])  # mean |w| = 1.0
    assert torch.equal(binarize_weight(w), torch.tensor([[1.0, -1.0], [1.0, 1.0]]))
    w = torch.tensor([-3.0, 1.0, 0.0, 2.0])  # mean |w| = 1.5, sign(0) = +1
    assert torch.equal(binarize_weight(w), torch.tensor([-1.5, 1.5, 1.5, 1.5]))


def test_weight_ste_is_identity():
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    g = torch.randn(4, 3, 3, 3)
    (binarize_weight(w) * g).sum().backward()
    assert torch.equal(w.grad, g)


def test_activation_forward_round_clip_half_up():
    x = torch.tensor([-0.5, 0.0, 0.3, 0.49, 0.5, 0.7, 1.0, 1.5])
    assert torch.equal(binarize_activation(x), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1.0]))


def test_activation_ste_passes_inside_closed_unit_interval():
    x = torch.tensor([-0.5, 0.0, 0.3, 0.5, 1.0, 1.0001, 2.0], requires_grad=True)
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    (binarize_activation(x) * g).sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]))


def test_binary_linear_forward_by_hand():
    lin = BinaryLinear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -3.0], [2.0, 0.0]]))  # mean |w| = 1.5
        lin.bias.copy_(torch.tensor([0.25, -0.25]))
    x = torch.tensor([[0.6, 0.2], [1.7, -4.0]])  # binarised: [1, 0], [1, 0]
    # w_b = [[1.5, -1.5], [1.5, 1.5]]
    expected = torch.tensor([[1.75, 1.25], [1.75, 1.25]])
    assert torch.allclose(lin(x), expected)


def test_binary_conv_forward_by_hand():
    conv = BinaryConv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.5, -0.5], [0.0, -2.0]]]]))  # mean |w| = 0.75
    x = torch.tensor([[[[0.9, 0.1, 0.6], [0.2, 0.8, 3.0], [-1.0, 0.55, 0.4]]]])
    # x_b = [[1,0,1],[0,1,1],[0,1,0]]; w_b = 0.75 * [[1,-1],[1,-1]]
    # out[i,j] = 0.75 * (x_b[i,j] - x_b[i,j+1] + x_b[i+1,j] - x_b[i+1,j+1])
    expected = 0.75 * torch.tensor([[[[1 - 0 + 0 - 1, 0 - 1 + 1 - 1], [0 - 1 + 0 - 1, 1 - 1 + 1 - 0]]]])
    assert torch.allclose(conv(x), expected)


def test_binary_conv_matches_functional_rule():
    torch.manual_seed(0)
    conv = BinaryConv2d(3, 5, 3, stride=2, padding=1, bias=True)
    x = torch.randn(2, 3, 9, 9)
    w = conv.weight
    w_b = torch.where(w >= 0, 1.0, -1.0) * w.abs().mean()
    ref = F.conv2d((x.clamp(0, 1) >= 0.5).float(), w_b, conv.bias, stride=2, padding=1)
    assert torch.allclose(conv(x), ref, atol=1e-6)


def test_binary_linear_gradients_match_ste_rule_and_surrogate_finite_differences():
    """STE gradients equal those of the surrogate net where round and sign(.)*E are identities."""
    torch.manual_seed(1)
    lin = BinaryLinear(6, 4)
    x = (torch.rand(3, 6) * 2.0 - 0.5).requires_grad_(True)  # some outside [0, 1]
    g = torch.randn(3, 4)
    (lin(x) * g).sum().backward()
    x_b = (x.detach().clamp(0, 1) >= 0.5).float()
    w_b = torch.where(lin.weight >= 0, 1.0, -1.0) * lin.weight.abs().mean()
    inside = ((x >= 0) & (x <= 1)).float()
    # Analytic rule.
    assert torch.allclose(lin.weight.grad, g.t() @ x_b, atol=1e-6)
    assert torch.allclose(lin.bias.grad, g.sum(0), atol=1e-6)
    assert torch.allclose(x.grad, (g @ w_b.detach()) * inside, atol=1e-6)

    # Finite differences of the surrogate (input grad: clip instead of round(clip)).
    def surrogate_in(xx: torch.Tensor) -> torch.Tensor:
        return (F.linear(xx.clamp(0, 1), w_b.detach(), lin.bias.detach()) * g).sum()

    eps = 1e-3
    num = torch.zeros_like(x)
    for idx in range(x.numel()):
        d = torch.zeros(x.numel())
        d[idx] = eps
        d = d.view_as(x)
        num.view(-1)[idx] = (surrogate_in(x.detach() + d) - surrogate_in(x.detach() - d)) / (2 * eps)
    away = ((x.detach() - 0).abs() > eps) & ((x.detach() - 1).abs() > eps)
    assert torch.allclose(x.grad[away], num[away], atol=1e-3)


def test_is_binary():
    assert is_binary(BinaryConv2d(1, 1, 3)) and is_binary(BinaryLinear(2, 2))
    assert not is_binary(nn.Conv2d(1, 1, 3)) and not is_binary(nn.Linear(2, 2))
    assert not is_binary(nn.BatchNorm2d(3))


def test_state_dict_holds_latent_weights():
    conv = BinaryConv2d(2, 3, 3)
    assert set(conv.state_dict()) == {"weight", "bias"}
    assert torch.equal(conv.state_dict()["weight"], conv.weight.detach())
