"""Omniglot few-shot data: archives and cache, class splits, episodes and the Lightning DataModule."""

from matchnet.data.datamodule import OmniglotDataModule
from matchnet.data.episodes import Episode, EpisodeDataset, EpisodeSampler
from matchnet.data.omniglot import OmniglotImages, find_sources, load_image, load_images

__all__ = [
    "Episode",
    "EpisodeDataset",
    "EpisodeSampler",
    "OmniglotDataModule",
    "OmniglotImages",
    "find_sources",
    "load_image",
    "load_images",
]
