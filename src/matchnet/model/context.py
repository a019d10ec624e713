"""Full Context Embeddings (FCE), Vinyals et al. (2016), section 2.1.2 and appendix A.

Support side, g(x_i, S): a bidirectional LSTM reads the support embeddings g'(x_i) in order,

    h_fwd_i, c_fwd_i = LSTM(g'(x_i), h_fwd_{i-1}, c_fwd_{i-1})
    h_bwd_i, c_bwd_i = LSTM(g'(x_i), h_bwd_{i+1}, c_bwd_{i+1})
    g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i)

Query side, f(x^, S) = attLSTM(f'(x^), g(S), K): K "processing steps" of an LSTM that reads the
support with content-based attention, starting from h_0 = c_0 = 0,

    h^_k, c_k = LSTM(f'(x^), [h_{k-1}, r_{k-1}], c_{k-1})
    h_k = h^_k + f'(x^)
    r_{k-1} = sum_i a(h_{k-1}, g(x_i)) g(x_i),   a(h_{k-1}, g(x_i)) = softmax_i(h_{k-1} . g(x_i))
    f(x^, S) = h_K

The appendix applies the read to k = 1 as well: r_0 = sum_i a(h_0, g(x_i)) g(x_i), which with
h_0 = 0 is the mean of the g(x_i) (``initial_read="attention"``). matchnet up to 0.1 started from
r_0 = 0 instead (``initial_read="zero"``), which checkpoints written then keep.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from matchnet.errors import MatchnetError

#: r_0 of the attention LSTM: read from h_0 = 0 (the paper's appendix) or zero (matchnet <= 0.1).
INITIAL_READS = ("attention", "zero")


class ContextEmbedding(nn.Module):
    """g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i): a bidirectional LSTM (hidden size ``dim``) over the support.

    Shapes: ``g' [S, dim] -> g [S, dim]``; the support is read in the order given.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, bidirectional=True)

    def forward(self, g_prime: Tensor) -> Tensor:
        """``[S, dim] -> [S, dim]``."""
        hidden, _ = self.lstm(g_prime)  # unbatched sequence: [S, 2 * dim], forward then backward states
        h_fwd, h_bwd = hidden.chunk(2, dim=-1)
        return h_fwd + h_bwd + g_prime


class AttentionLSTM(nn.Module):
    """f(x^, S) = attLSTM(f'(x^), g(S), K): K = ``steps`` read-attention steps over the support.

    The paper's LSTM has the concatenation [h_{k-1}, r_{k-1}] as its hidden state and f'(x^) as its
    input, so its gate pre-activations are ``W_x f' + W_h h_{k-1} + W_r r_{k-1} + b``. Moving r to
    the input side gives exactly the same sum, so it is an ``nn.LSTMCell(input_size=2*dim,
    hidden_size=dim)`` fed ``cat(f', r_{k-1})`` with state ``(h_{k-1}, c_{k-1})``: its ``weight_ih``
    is ``[W_x, W_r]``, its ``weight_hh`` is ``W_h`` and ``bias_ih + bias_hh`` is ``b``.

    All queries are processed at once; queries never interact. ``steps=0`` returns f' unchanged.
    ``initial_read``: ``"attention"`` reads r_0 from h_0 = 0 like every later read (the paper's
    appendix; the mean of g), ``"zero"`` starts from r_0 = 0 (matchnet up to 0.1; the default of the
    constructor, so that checkpoints which do not store the setting keep their behaviour).

    Shapes: ``f' [Q, dim], g [S, dim] -> f [Q, dim]``.
    """

    def __init__(self, dim: int, steps: int, initial_read: str = "zero") -> None:
        super().__init__()
        if initial_read not in INITIAL_READS:
            raise MatchnetError(
                f"model.fce_initial_read={initial_read!r} is invalid: it must be one of "
                f"{', '.join(INITIAL_READS)}."
            )
        self.dim = dim
        self.steps = steps
        self.initial_read = initial_read
        self.cell = nn.LSTMCell(input_size=2 * dim, hidden_size=dim)

    @staticmethod
    def read(h: Tensor, g: Tensor) -> Tensor:
        """``r = sum_i softmax_i(h . g(x_i)) g(x_i)``: ``h [Q, dim], g [S, dim] -> r [Q, dim]``."""
        return torch.softmax(h @ g.T, dim=-1) @ g

    def forward(self, f_prime: Tensor, g: Tensor) -> Tensor:
        """``f' [Q, dim], g [S, dim] -> f [Q, dim]``."""
        if self.steps == 0:
            return f_prime
        h, c = torch.zeros_like(f_prime), torch.zeros_like(f_prime)
        r = self.read(h, g) if self.initial_read == "attention" else torch.zeros_like(f_prime)
        for _ in range(self.steps):
            h_hat, c = self.cell(torch.cat([f_prime, r], dim=-1), (h, c))
            h = h_hat + f_prime
            r = self.read(h, g)
        return h

    def extra_repr(self) -> str:
        return f"dim={self.dim}, steps={self.steps}, initial_read={self.initial_read!r}"
