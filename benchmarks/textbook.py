"""The textbook data pipeline the benchmarks compare against: a paddle.io.Dataset that opens, decodes and
transforms every image again each time it is read."""
from __future__ import annotations

import numpy as np
import paddle
from PIL import Image

from engine.bundle import IMAGENET_MEAN, IMAGENET_STD
from engine.data import Sample


def textbook_transform(image_size: int, augment: bool):
    """The article's transforms: resize and normalise; with `augment`, resize larger, random crop and flip."""
    from paddle.vision import transforms

    steps = ([transforms.Resize(int(image_size * 256 / 224)), transforms.RandomCrop(image_size),
              transforms.RandomHorizontalFlip()] if augment else [transforms.Resize((image_size, image_size))])
    return transforms.Compose([*steps, transforms.ToTensor(),
                               transforms.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))])


class TextbookDataset(paddle.io.Dataset):
    def __init__(self, samples: list[Sample], image_size: int, augment: bool) -> None:
        super().__init__()
        self.samples = samples
        self.transform = textbook_transform(image_size, augment)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        with Image.open(sample.path) as image:
            return self.transform(image.convert("RGB")), np.int64(sample.label)

    def __len__(self) -> int:
        return len(self.samples)
