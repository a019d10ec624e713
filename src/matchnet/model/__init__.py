"""Matching Networks: the Conv4 and ResNet-12 embeddings, Full Context Embeddings and the attention kernel."""

from matchnet.model.attention import DISTANCES, AttentionKernel, cosine, dot, euclidean, get_distance
from matchnet.model.context import AttentionLSTM, ContextEmbedding
from matchnet.model.encoders import Conv4, Normalize, ResNet12
from matchnet.model.matching_network import MatchingNetwork

__all__ = [
    "DISTANCES",
    "AttentionKernel",
    "AttentionLSTM",
    "ContextEmbedding",
    "Conv4",
    "MatchingNetwork",
    "Normalize",
    "ResNet12",
    "cosine",
    "dot",
    "euclidean",
    "get_distance",
]
