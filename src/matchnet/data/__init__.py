"""Few-shot data: Omniglot, miniImageNet and image folders, class splits, episodes and DataModules."""

from matchnet.data.augment import FlipAndCrop
from matchnet.data.batches import ImageBatch, ImageBatchDataset
from matchnet.data.datamodule import EpisodeDataModule
from matchnet.data.episodes import Episode, EpisodeDataset, EpisodeSampler
from matchnet.data.folder import ImageFolderDataModule
from matchnet.data.images import image_pixels, load_image
from matchnet.data.miniimagenet import MiniImageNetDataModule
from matchnet.data.omniglot import OmniglotDataModule, OmniglotImages, find_sources, load_images
from matchnet.data.settings import EpisodeSettings

__all__ = [
    "Episode",
    "EpisodeDataModule",
    "EpisodeDataset",
    "EpisodeSampler",
    "EpisodeSettings",
    "FlipAndCrop",
    "ImageBatch",
    "ImageBatchDataset",
    "ImageFolderDataModule",
    "MiniImageNetDataModule",
    "OmniglotDataModule",
    "OmniglotImages",
    "find_sources",
    "image_pixels",
    "load_image",
    "load_images",
]
