"""Matching Networks: the Conv4 and ResNet-12 embeddings, Full Context Embeddings and the attention kernel."""

from matchnet.model.attention import DISTANCES, AttentionKernel, cosine, dot, euclidean, get_distance
from matchnet.model.context import INITIAL_READS, AttentionLSTM, ContextEmbedding
from matchnet.model.encoders import Conv4, Normalize, ResNet12
from matchnet.model.matching_network import READOUTS, MatchingNetwork
from matchnet.model.prototype import class_means

__all__ = [
    "DISTANCES",
    "INITIAL_READS",
    "READOUTS",
    "AttentionKernel",
    "AttentionLSTM",
    "ContextEmbedding",
    "Conv4",
    "MatchingNetwork",
    "Normalize",
    "ResNet12",
    "class_means",
    "cosine",
    "dot",
    "euclidean",
    "get_distance",
]
