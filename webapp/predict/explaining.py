"""The `explanation` beside a prediction: where the model looked for the class it answered with.

    {"class": str, "exact": bool, "size": [h, w], "map": [[0..1, ...], ...] (h rows of w cells),
     "region": {"x", "y", "width", "height"} (the centre crop the map covers, as fractions of the upright
     image), "png": base64 (only when asked: the map as an RGBA heat map, one pixel per cell)}

The map is the class activation map of the top class (see engine.explain), scaled to 0..1 and rounded.
"""
from __future__ import annotations

import base64

import numpy as np
from PIL import Image

from engine.bundle import Bundle
from engine.explain import heat_map_png, normalised
from engine.images import upright_size

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
