"""FCE against hand-written references of the paper's equations (appendix A of Vinyals et al., 2016)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from matchnet.errors import MatchnetError
from matchnet.model import AttentionLSTM, ContextEmbedding

D = 6


def lstm_step(x: Tensor, state: Tensor, c: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """A textbook LSTM step on vectors: gates = W [x; state] + b, in PyTorch's (i, f, g, o) order."""
    i, f, g, o = (w @ torch.cat([x, state]) + b).chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def test_context_embedding_matches_bidirectional_recurrence() -> None:
    torch.manual_seed(0)
    module = ContextEmbedding(D).double()
    g_prime = torch.randn(5, D, dtype=torch.double)
    lstm = module.lstm
    w_fwd = torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], dim=1)
    b_fwd = lstm.bias_ih_l0 + lstm.bias_hh_l0
    w_bwd = torch.cat([lstm.weight_ih_l0_reverse, lstm.weight_hh_l0_reverse], dim=1)
    b_bwd = lstm.bias_ih_l0_reverse + lstm.bias_hh_l0_reverse

    h_fwd, h_bwd = [None] * 5, [None] * 5
    h, c = torch.zeros(D, dtype=torch.double), torch.zeros(D, dtype=torch.double)
    for i in range(5):  # h_fwd_i, c_fwd_i = LSTM(g'(x_i), h_fwd_{i-1}, c_fwd_{i-1})
        h, c = lstm_step(g_prime[i], h, c, w_fwd, b_fwd)
        h_fwd[i] = h
    h, c = torch.zeros(D, dtype=torch.double), torch.zeros(D, dtype=torch.double)
    for i in reversed(range(5)):  # h_bwd_i, c_bwd_i = LSTM(g'(x_i), h_bwd_{i+1}, c_bwd_{i+1})
        h, c = lstm_step(g_prime[i], h, c, w_bwd, b_bwd)
        h_bwd[i] = h
    expected = torch.stack([h_fwd[i] + h_bwd[i] + g_prime[i] for i in range(5)])

    with torch.no_grad():
        torch.testing.assert_close(module(g_prime), expected)


def test_context_embedding_depends_on_whole_support() -> None:
    torch.manual_seed(0)
    module = ContextEmbedding(D)
    g_prime = torch.randn(5, D)
    changed = g_prime.clone()
    changed[2] += 1.0
    with torch.no_grad():
        before, after = module(g_prime), module(changed)
    others = [0, 1, 3, 4]
    assert not torch.allclose(before[others], after[others])


def reference_attention_lstm(
    f_prime: Tensor, g: Tensor, w_x: Tensor, w_hr: Tensor, b: Tensor, steps: int, paper_r0: bool = False
) -> Tensor:
    """The paper's attLSTM for ONE query: an LSTM whose hidden state is [h, r] (2D) and output h^ (D).

    ``paper_r0``: r_0 = sum_i a(h_0, g(x_i)) g(x_i) with h_0 = 0, i.e. the plain mean of the g(x_i)
    (the appendix); else r_0 = 0.
    """
    h, r, c = (torch.zeros(D, dtype=f_prime.dtype) for _ in range(3))
    if paper_r0:
        r = g.mean(0)
    for _ in range(steps):
        h_hat, c = lstm_step(f_prime, torch.cat([h, r]), c, torch.cat([w_x, w_hr], dim=1), b)
        h = h_hat + f_prime
        r = (torch.softmax(g @ h, dim=0)[:, None] * g).sum(0)
    return h


@pytest.mark.parametrize("initial_read", ["zero", "attention"])
@pytest.mark.parametrize("steps", [1, 3])
def test_attention_lstm_matches_paper_equations(steps: int, initial_read: str) -> None:
    torch.manual_seed(0)
    w_x = torch.randn(4 * D, D, dtype=torch.double) * 0.5  # acts on f'(x^)
    w_hr = torch.randn(4 * D, 2 * D, dtype=torch.double) * 0.5  # acts on the hidden state [h; r]
    b = torch.randn(4 * D, dtype=torch.double)
    module = AttentionLSTM(D, steps, initial_read).double()
    with torch.no_grad():  # the docstring's mapping: weight_ih = [W_x, W_r], weight_hh = W_h
        module.cell.weight_ih.copy_(torch.cat([w_x, w_hr[:, D:]], dim=1))
        module.cell.weight_hh.copy_(w_hr[:, :D])
        module.cell.bias_ih.copy_(b)
        module.cell.bias_hh.zero_()
    f_prime = torch.randn(3, D, dtype=torch.double)
    g = torch.randn(4, D, dtype=torch.double)

    paper_r0 = initial_read == "attention"
    expected = torch.stack([reference_attention_lstm(q, g, w_x, w_hr, b, steps, paper_r0) for q in f_prime])
    with torch.no_grad():
        torch.testing.assert_close(module(f_prime, g), expected)


def test_attention_lstm_zero_steps_is_identity() -> None:
    f_prime = torch.randn(3, D)
    assert torch.equal(AttentionLSTM(D, 0)(f_prime, torch.randn(4, D)), f_prime)


def test_attention_lstm_is_batched_without_leakage() -> None:
    torch.manual_seed(0)
    module = AttentionLSTM(D, 4).double()
    f_prime, g = torch.randn(7, D, dtype=torch.double), torch.randn(5, D, dtype=torch.double)
    with torch.no_grad():
        batched = module(f_prime, g)
        one_by_one = torch.cat([module(f_prime[q : q + 1], g) for q in range(7)])
    assert batched.shape == (7, D)
    torch.testing.assert_close(batched, one_by_one)


def test_initial_read_changes_the_output_and_defaults_to_zero() -> None:
    torch.manual_seed(0)
    zero = AttentionLSTM(D, 2).double()
    paper = AttentionLSTM(D, 2, "attention").double()
    paper.load_state_dict(zero.state_dict())  # same keys: old checkpoints load into either
    f_prime, g = torch.randn(3, D, dtype=torch.double), torch.randn(4, D, dtype=torch.double) + 1.0
    with torch.no_grad():
        assert not torch.allclose(zero(f_prime, g), paper(f_prime, g))
    assert zero.initial_read == "zero"


def test_initial_read_rejects_unknown_values() -> None:
    with pytest.raises(MatchnetError, match=r"model.fce_initial_read='mean'.*attention, zero"):
        AttentionLSTM(D, 2, "mean")
