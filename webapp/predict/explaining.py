"""The `explanation` beside a prediction: where the model looked for the class it answered with.

    {"class": str, "exact": bool, "size": [h, w], "map": [[0..1, ...], ...] (h rows of w cells),
     "region": {"x", "y", "width", "height"} (the centre crop the map covers, as fractions of the upright
     image), "png": base64 (only when asked: the map as an RGBA heat map, one pixel per cell)}

The map is the class activation map of the top class (see engine.explain), scaled to 0..1 and rounded.
`explain_dataset_image` answers the same for an image of a dataset (the misclassified gallery): it reads only,
so it records no serving statistics and holds nothing for feedback.
"""
from __future__ import annotations

import base64

import numpy as np
from PIL import Image

from engine.bundle import Bundle
from engine.errors import StudioError
from engine.explain import heat_map_png, normalised
from engine.images import ImageRejected, open_checked, upright_size

MAP_DECIMALS = 3


def explanation(bundle: Bundle, image: Image.Image, probabilities: np.ndarray, maps: np.ndarray,
                heat_map: bool = False) -> dict:
    """The explanation of the most likely class, from the class maps (K x h x w) of one image."""
    top = int(np.argmax(probabilities))
    scaled = normalised(maps[top])
    answer = {"class": bundle.classes[top], "exact": bool(bundle.meta["explain"]["exact"]),
              "size": list(scaled.shape), "map": np.round(scaled, MAP_DECIMALS).tolist(),
              "region": {key: round(value, 6) for key, value in
                         bundle.preprocess.crop_region(*upright_size(image)).items()}}
    if heat_map:
        answer["png"] = base64.b64encode(heat_map_png(scaled)).decode("ascii")
    return answer


def explain_dataset_image(loaded, image_bytes: bytes, max_pixels: int, top_k: int = 3) -> dict:
    """The answer of `loaded` (a LoadedVersion) for a stored image, with its explanation and heat map;
    refused (409 explanation_unavailable) when the version cannot explain."""
    reason = loaded.explanation_unavailable
    if reason is not None:
        raise StudioError("explanation_unavailable", "Model version %(version)s cannot explain its answers: "
                          "%(reason)s.", {"version": loaded.version, "reason": reason})
    try:
        image, _ = open_checked(image_bytes, max_pixels, loaded.decode_size)
    except ImageRejected as exc:
        raise StudioError(exc.code, exc.template, exc.params, field="image") from None
    answer = loaded.classify(image, min(top_k, len(loaded.classes)), explain=True, heat_map=True)
    return {"model_version": loaded.version, "runtime": loaded.runtime, "top_k": answer["top_k"],
            "explanation": answer["explanation"]}
