"""The loop of a batch run: items read, decoded and preprocessed as POST /api/predict does (engine.images.
open_checked, the bundle's Preprocess), classified a batch at a time by the loaded version's own inference
threads, and answered by the same function (webapp.predict.serving.answer). It holds one batch at a time."""
from __future__ import annotations

from itertools import islice
from typing import Iterable, Iterator

import numpy as np

from engine.images import ImageRejected, open_checked
from engine.messages import N_, Message
from webapp.batch.inputs import Item, Refused, read_item
from webapp.batch.results import answered_row, refused_row
from webapp.predict.serving import LoadedVersion, answer


def _decoded(item: Item, loaded: LoadedVersion, max_bytes: int, max_pixels: int) -> np.ndarray | Refused:
    """The item as its decode-size square (uint8), or why it gets no answer."""
    data = read_item(item, max_bytes)
    if isinstance(data, Refused):
        return data
    try:
        image, _ = open_checked(data, max_pixels, loaded.decode_size)
        return loaded.bundle.preprocess.square(image)
    except ImageRejected as exc:
        return Refused(exc.code, Message(exc.template, exc.params))
    except Exception as exc:  # a decoder's own failure on one file: that file is refused, the run goes on
        return Refused("image_corrupt", Message(N_("The image could not be decoded (%(kind)s)."),
                                                {"kind": type(exc).__name__}))


def classify_batch(items: list[Item], loaded: LoadedVersion, top_k: int, abstain_below: float | None,
                   max_bytes: int, max_pixels: int) -> list[dict]:
    """The result rows of `items`, in their order: the decoded ones classified as one batch."""
    rows: list[dict | None] = [None] * len(items)
    squares, slots = [], []
    for index, item in enumerate(items):
        decoded = _decoded(item, loaded, max_bytes, max_pixels)
        if isinstance(decoded, Refused):
            rows[index] = refused_row(item.path, decoded.code, decoded.reason)
        else:
            squares.append(decoded)
            slots.append(index)
    if squares:
        rule = loaded.bundle.preprocess
        probabilities = loaded.threads.run(rule.batch(np.stack(squares)))
        top_k = min(top_k, len(loaded.classes))
        for index, scores in zip(slots, probabilities):
            rows[index] = answered_row(items[index].path, answer(scores, loaded.classes, top_k, abstain_below))
    return rows


def classify_items(items: Iterable[Item], loaded: LoadedVersion, top_k: int, abstain_below: float | None,
                   batch_size: int, max_bytes: int, max_pixels: int) -> Iterator[list[dict]]:
    """Each batch's result rows in turn, `batch_size` items at a time."""
    items = iter(items)
    while batch := list(islice(items, batch_size)):
        yield classify_batch(batch, loaded, top_k, abstain_below, max_bytes, max_pixels)
