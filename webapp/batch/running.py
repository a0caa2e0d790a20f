"""The loop of a batch run: items read, decoded and preprocessed as POST /api/predict does (engine.images.
open_checked, the bundle's Preprocess), classified a batch at a time by the loaded version's own inference
threads, and answered by the same function (webapp.predict.serving.answer). It holds one batch at a time."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Iterable, Iterator

import numpy as np

from engine.images import ImageRejected, open_checked
from engine.messages import N_, Message
from webapp.batch.inputs import Item, Refused, read_item
from webapp.batch.results import answered_row, refused_row
from webapp.predict.serving import LoadedVersion, answer
from webapp.release.routing import AbstainRule


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


@dataclass
class _Prepared:
    """A batch's items decoded: the rows of the refused ones in place, the squares of the others and their slots."""

    items: list[Item]
    rows: list[dict | None]
    squares: list[np.ndarray]
    slots: list[int]


def _prepare(items: list[Item], loaded: LoadedVersion, max_bytes: int, max_pixels: int) -> _Prepared:
    prepared = _Prepared(items, [None] * len(items), [], [])
    for index, item in enumerate(items):
        decoded = _decoded(item, loaded, max_bytes, max_pixels)
        if isinstance(decoded, Refused):
            prepared.rows[index] = refused_row(item.path, decoded.code, decoded.reason)
        else:
            prepared.squares.append(decoded)
            prepared.slots.append(index)
    return prepared


def _probabilities(prepared: _Prepared, loaded: LoadedVersion) -> np.ndarray | None:
    if not prepared.squares:
        return None
    rule = loaded.bundle.preprocess
    return loaded.threads.run(rule.batch(np.stack(prepared.squares)))


def _answered(prepared: _Prepared, probabilities: np.ndarray | None, loaded: LoadedVersion, top_k: int,
              abstain: AbstainRule | None) -> list[dict]:
    rows = prepared.rows
    top_k = min(top_k, len(loaded.classes))
    for index, scores in zip(prepared.slots, probabilities if probabilities is not None else []):
        rows[index] = answered_row(prepared.items[index].path, answer(scores, loaded.classes, top_k, abstain))
    return rows


def classify_items(items: Iterable[Item], loaded: LoadedVersion, top_k: int, abstain: AbstainRule | None,
                   batch_size: int, max_bytes: int, max_pixels: int) -> Iterator[list[dict]]:
    """Each batch's result rows in turn, `batch_size` items at a time. The next batch is decoded while the
    runtime classifies the one before (on the version's inference thread), so decoding and inference share
    the machine's cores; at most two batches are held."""
    items = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="batch-inference") as runtime:
        pending = None
        while batch := list(islice(items, batch_size)):
            prepared = _prepare(batch, loaded, max_bytes, max_pixels)
            if pending is not None:
                yield _answered(pending[0], pending[1].result(), loaded, top_k, abstain)
            pending = (prepared, runtime.submit(_probabilities, prepared, loaded))
        if pending is not None:
            yield _answered(pending[0], pending[1].result(), loaded, top_k, abstain)
