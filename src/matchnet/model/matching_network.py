"""Matching Networks (Vinyals et al., 2016): P(y^ | x^, S) = sum_i a(x^, x_i) y_i."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matchnet.errors import MatchnetError
from matchnet.model.attention import AttentionKernel
from matchnet.model.context import AttentionLSTM, ContextEmbedding
from matchnet.model.prototype import class_means

#: How class scores are read from the embeddings: attention over the support images (the paper's
#: P(y^ | x^, S) = sum_i a(x^, x_i) y_i), the kernel over per-class mean embeddings (prototypes), or
#: the nearest support image (each class scored by its best-matching support: nearest neighbour).
READOUTS = ("attention", "prototype", "nearest")


class MatchingNetwork(nn.Module):
    """Classifies queries by attention over a labelled support set.

    The encoder (g' = f', shared) must expose ``embedding_dim``. With ``fce`` the support embeddings
    are re-embedded in context by a bidirectional LSTM and the queries by an attention LSTM of
    ``fce_steps`` steps (see ``matchnet.model.context``); without it g = g' and f = f'.

    Args:
        encoder: image embedding, ``[B, C, H, W] -> [B, encoder.embedding_dim]``.
        fce: use Full Context Embeddings.
        fce_steps: K, the processing steps of the attention LSTM (0 leaves f = f').
        distance: c in the attention kernel, a key of ``matchnet.model.DISTANCES``.
        temperature: the kernel's logits are ``c(f, g) / temperature``.
        learn_temperature: make the temperature a parameter (stored as its log).
        readout: ``attention`` (the paper) sums the attention over each class's supports;
            ``prototype`` applies the kernel to the mean embedding of each class instead
            (``matchnet.model.prototype``; with ``distance="euclidean"`` and no FCE, Prototypical
            Networks); ``nearest`` scores each class by its single best-matching support image,
            ``log_softmax_c(max_{i: y_i = c} c(f(x^), g(x_i)) / temperature)``, so the predicted class
            is that of the nearest neighbour (the pixel and Siamese baselines of the paper's Table 1).
        fce_initial_read: r_0 of the attention LSTM, ``attention`` (the paper's appendix: the mean of
            g) or ``zero`` (matchnet <= 0.1). The constructor default is ``zero`` so that checkpoints
            that do not store it keep their behaviour; ``conf/model/matchnet.yaml`` sets ``attention``.
        channels_last: run the encoder in the channels-last memory format (NHWC). Same results up to
            float rounding; on CPU it made the Conv4 training step about 1.5x faster
            (``benchmarks/throughput.py``, ``results/throughput.md``).
        compile: run the encoder through ``torch.compile`` (compiled on the first episode of each
            shape; the state dict keeps its keys). Measured on CPU: slower than ``channels_last``
            alone and tens of seconds of compilation, hence off by default.
    """

    def __init__(
        self,
        encoder: nn.Module,
        fce: bool = True,
        fce_steps: int = 5,
        distance: str = "cosine",
        temperature: float = 1.0,
        learn_temperature: bool = False,
        channels_last: bool = False,
        compile: bool = False,
        readout: str = "attention",
        fce_initial_read: str = "zero",
    ) -> None:
        super().__init__()
        if isinstance(fce_steps, bool) or not isinstance(fce_steps, int) or fce_steps < 0:
            raise MatchnetError(f"model.fce_steps={fce_steps!r} must be a non-negative integer.")
        if readout not in READOUTS:
            allowed = ", ".join(READOUTS)
            raise MatchnetError(f"model.readout={readout!r} is invalid: it must be one of {allowed}.")
        dim = int(encoder.embedding_dim)
        self.encoder = encoder
        self.fce = fce
        self.readout = readout
        self.context = ContextEmbedding(dim) if fce else None
        self.attention_lstm = AttentionLSTM(dim, fce_steps, fce_initial_read) if fce else None
        self.kernel = AttentionKernel(distance, temperature, learn_temperature)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.encoder.to(memory_format=torch.channels_last)
        # Kept out of the module tree (a plain attribute), so state dicts and checkpoints are unchanged.
        self.__dict__["_encode"] = torch.compile(self.encoder) if compile else self.encoder

    def embed(self, support_x: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
        """``support_x [S, C, H, W], query_x [Q, C, H, W] -> (g [S, D], f [Q, D])``.

        Support and queries go through the encoder as one batch (one conv pass, one set of
        BatchNorm statistics).
        """
        images = torch.cat([support_x, query_x])
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        embeddings = self.__dict__["_encode"](images)
        g, f = embeddings[: support_x.shape[0]], embeddings[support_x.shape[0] :]
        if self.context is not None and self.attention_lstm is not None:
            g = self.context(g)
            f = self.attention_lstm(f, g)
        return g, f

    def log_attention(self, support_x: Tensor, query_x: Tensor) -> Tensor:
        """``log a(x^, x_i)``: ``[Q, S]``, each row a log-softmax over the support."""
        g, f = self.embed(support_x, query_x)
        return self.kernel(f, g)

    def attention(self, support_x: Tensor, query_x: Tensor) -> Tensor:
        """Attention weights ``a(x^, x_i)``: ``[Q, S]``, rows sum to 1."""
        return self.log_attention(support_x, query_x).exp()

    def forward(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, n_way: int) -> Tensor:
        """``log P(y = c | x^, S) = log sum_{i: y_i = c} a(x^, x_i)`` (``readout="attention"``),
        ``log_softmax_c(c(f(x^), p_c) / temperature)`` over class means p_c (``readout="prototype"``), or
        ``log_softmax_c(max_{i: y_i = c} c(f(x^), g(x_i)) / temperature)`` (``readout="nearest"``).

        Args:
            support_x: ``[S, C, H, W]`` support images.
            support_y: ``[S]`` int64 labels in ``0..n_way-1``.
            query_x: ``[Q, C, H, W]`` query images.
            n_way: number of classes.

        Returns:
            ``[Q, n_way]`` log-probabilities (each row's exp sums to 1), for ``F.nll_loss``.
        """
        if self.readout == "prototype":
            g, f = self.embed(support_x, query_x)
            return self.kernel(f, class_means(g, support_y, n_way))  # [Q, n_way]
        log_a = self.log_attention(support_x, query_x)  # [Q, S]
        in_class = F.one_hot(support_y, n_way).bool()  # [S, n_way]
        # Each class sums its own supports only. The lowest finite value stands in for log 0 = -inf so that
        # a class without supports gets probability 0 and zero (not NaN) gradients.
        per_class = log_a.unsqueeze(-1).masked_fill(~in_class, torch.finfo(log_a.dtype).min)  # [Q, S, n_way]
        if self.readout == "nearest":
            # log a differs from the kernel logits by a per-query constant, which the log-softmax removes.
            return per_class.amax(dim=1).log_softmax(dim=-1)  # [Q, n_way]
        return per_class.logsumexp(dim=1)  # [Q, n_way]
