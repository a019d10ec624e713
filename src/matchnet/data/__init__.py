"""Few-shot data: Omniglot, miniImageNet and image folders, class splits, episodes and DataModules."""

from matchnet.data.augment import FlipAndCrop
from matchnet.data.datamodule import (
    EpisodeDataModule,
    ImageFolderDataModule,
    MiniImageNetDataModule,
    OmniglotDataModule,
)
from matchnet.data.episodes import Episode, EpisodeDataset, EpisodeSampler
from matchnet.data.omniglot import OmniglotImages, find_sources, image_pixels, load_image, load_images

__all__ = [
    "Episode",
    "EpisodeDataModule",
    "EpisodeDataset",
    "EpisodeSampler",
    "FlipAndCrop",
    "ImageFolderDataModule",
    "MiniImageNetDataModule",
    "OmniglotDataModule",
    "OmniglotImages",
    "find_sources",
    "image_pixels",
    "load_image",
    "load_images",
]
