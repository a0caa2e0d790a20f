"""Data quality: a small signature per image, and a dataset's quality report from those signatures.

The upload checker (engine.imagecheck) computes each image's `Signature` from the thumbnail it already makes
(no second decode); the report compares the signatures of a whole dataset: near duplicates within a class,
leakage across splits, conflicts across classes, image issues (blurry, dark, bright, almost no information, odd
size or aspect, greyscale in a colour set) and the class balance. numpy and Pillow only.

Near duplicates are found by the shape of each image's low frequencies: the lowest 6x6 DCT coefficients (DC
left out) of the grey square, as a unit vector stored in int8, of the whole image and of the CROPS of it (its
centre with 5% and 10% cut off each side, and 10% cut off one side, for each side). A copy cropped by up to 10%
per side lines up with one of those crops of its original far better than with the whole; resizing,
recompression and brightness barely move those frequencies. Colour tells apart images of a like shape: each
keeps the chromaticity (r and g over r + g + b, which brightness does not move) of a 3x3 grid of its regions.
The distance of two images is 1 - the largest cosine between the whole of one and any crop of the other, plus
the largest difference between their chromaticities: 0 for the same picture, about 1 for unrelated ones.
The pair search multiplies the vectors' matrix block by block (numpy's matrix product on one core, no index),
then adds the colour term to the pairs whose shape alone is within the threshold.
"""
from __future__ import annotations

import base64
import binascii
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

# The grey square, SIGNATURE_SIDE x SIGNATURE_SIDE, the shape and grey measures are taken at: blur, brightness
# and information depend on scale, so every image is measured at this one size (whatever its own). The colour
# measures are taken of the checker's thumbnail (its longer side THUMB_SIZE at most).
SIGNATURE_SIDE = 128
SPECTRUM_FREQUENCIES = 6  # the lowest 6x6 frequencies, the DC term left out: 35 coefficients
SPECTRUM_LENGTH = SPECTRUM_FREQUENCIES ** 2 - 1
COLOUR_SIDE = 64  # the grid of pixels colourfulness is measured on
CHROMA_GRID = 3  # the regions across and down whose chromaticity is kept
CHROMA_LENGTH = CHROMA_GRID * CHROMA_GRID * 2
# The part of the image each spectrum leaves out, as fractions cut off (left, top, right, bottom): the whole
# image first, then two centres and one side cut for each side.
CROPS = ((0, 0, 0, 0), (0.05, 0.05, 0.05, 0.05), (0.1, 0.1, 0.1, 0.1),
         (0.1, 0, 0, 0), (0, 0.1, 0, 0), (0, 0, 0.1, 0), (0, 0, 0, 0.1))
_MEASURES = ("blur", "brightness", "information", "colourfulness")


@dataclass(frozen=True)
class Signature:
    """What the report needs of one image, a few hundred bytes as JSON.

    spectra: per CROPS entry, the unit vector of the low DCT coefficients times 127, in int8 (bytes).
    chroma: per region of a CHROMA_GRID x CHROMA_GRID grid, r / (r + g + b) and g / (r + g + b) times 255, in
    uint8 (bytes).
    blur: variance of the Laplacian of the grey image at SIGNATURE_SIDE (low: blurry). brightness: mean grey
    level, 0-255. information: grey-level entropy in bits, 0 (flat) to 8. colourfulness: mean spread between
    the RGB channels of a pixel, 0-255, 0 for a greyscale image.
    """
    spectra: tuple[bytes, ...]
    chroma: bytes
    blur: float
    brightness: float
    information: float
    colourfulness: float

    def to_json(self) -> dict:
        return {"spectra": [base64.b64encode(spectrum).decode() for spectrum in self.spectra],
                "chroma": base64.b64encode(self.chroma).decode(),
                **{name: round(getattr(self, name), 3) for name in _MEASURES}}

    @classmethod
    def from_json(cls, data: object) -> "Signature":
        """The signature `data` holds, or ValueError when it is not exactly a to_json() of one: it comes back
        from the untrusted checker process."""
        if not isinstance(data, dict) or set(data) != {"spectra", "chroma", *_MEASURES}:
            raise ValueError("a signature is an object with spectra, chroma and measures")
        spectra = data["spectra"]
        if not (isinstance(spectra, list) and len(spectra) == len(CROPS) and all(isinstance(v, str) for v in spectra)):
            raise ValueError(f"a signature's spectra are {len(CROPS)} strings")
        decoded = tuple(_decoded(value, SPECTRUM_LENGTH) for value in spectra)
        if not isinstance(data["chroma"], str):
            raise ValueError("a signature's chroma is a string")
        chroma = _decoded(data["chroma"], CHROMA_LENGTH)
        measures = {name: data[name] for name in _MEASURES}
        for name, value in measures.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"a signature's {name} is a finite number")
            if value < 0:
                raise ValueError(f"a signature's {name} is not negative")
        return cls(decoded, chroma, **{name: float(value) for name, value in measures.items()})


def _decoded(value: str, length: int) -> bytes:
    try:
        decoded = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("a signature's spectra and chroma are base64") from None
    if len(decoded) != length:
        raise ValueError(f"a signature's spectrum or chroma of {len(decoded)} bytes, not {length}")
    return decoded


def signature(image: Image.Image) -> Signature:
    """The signature of an upright RGB image (the checker's thumbnail, before it is encoded). Every measure is
    taken of one grey square of SIGNATURE_SIDE (the image squeezed to it; the spectra's crops cut in proportion)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    grey = rgb.convert("L").resize((SIGNATURE_SIDE, SIGNATURE_SIDE), Image.BILINEAR)
    square = np.asarray(grey, dtype=np.float32)
    return Signature(spectra=tuple(_spectrum(square, *cosines) for cosines in _CROP_COSINES),
                     chroma=_chroma(rgb), blur=_laplacian_variance(square),
                     brightness=float(square.mean()), information=_entropy(square),
                     colourfulness=_colourfulness(rgb))


def _cosines(low: float, high: float) -> np.ndarray:
    """The DCT's lowest SPECTRUM_FREQUENCIES cosines over the part [low, high] of a SIGNATURE_SIDE axis, sampled
    at its pixels (a pixel on the edge by the part of it inside); 0 outside. Summing over every pixel of the part
    is the low-pass filter: no resize is needed, and no aliasing comes from one."""
    edges = np.arange(SIGNATURE_SIDE + 1) / SIGNATURE_SIDE
    start, end = np.maximum(edges[:-1], low), np.minimum(edges[1:], high)
    inside = np.clip(end - start, 0, None) * SIGNATURE_SIDE
    place = ((start + end) / 2 - low) / (high - low)
    frequency = np.arange(SPECTRUM_FREQUENCIES)[:, None]
    cosines = np.cos(np.pi * frequency * place[None, :]) * inside[None, :]
    cosines[0] /= np.sqrt(2)  # the DCT's own weight of its constant term against the others
    return cosines.astype(np.float32)


# Per crop, the cosines down (rows) and across (columns) of the part it keeps.
_CROP_COSINES = tuple((_cosines(top, 1 - bottom), _cosines(left, 1 - right)) for left, top, right, bottom in CROPS)


def _spectrum(square: np.ndarray, down: np.ndarray, across: np.ndarray) -> bytes:
    """The low frequencies of the part of `square` the cosines cover, as a unit vector times 127, in int8."""
    low = (down @ square @ across.T).ravel()[1:]
    norm = float(np.linalg.norm(low))
    # A flat image (under half a grey level of shape, e.g. its JPEG noise) has no shape: it matches nothing.
    unit = low / norm if norm > 0.5 * square.size else low * 0
    return np.round(unit * 127).astype(np.int8).tobytes()


def _chroma(rgb: Image.Image) -> bytes:
    """r / (r + g + b) and g / (r + g + b) of each region of a CHROMA_GRID grid, times 255, in uint8."""
    regions = np.asarray(rgb.resize((CHROMA_GRID, CHROMA_GRID), Image.BOX), dtype=np.float32) + 1
    chromaticity = regions[..., :2] / regions.sum(axis=2, keepdims=True)
    return np.round(chromaticity * 255).astype(np.uint8).tobytes()


def _laplacian_variance(square: np.ndarray) -> float:
    laplacian = (square[:-2, 1:-1] + square[2:, 1:-1] + square[1:-1, :-2] + square[1:-1, 2:]
                 - 4 * square[1:-1, 1:-1])
    return float(laplacian.var())


def _entropy(square: np.ndarray) -> float:
    counts = np.bincount(square.astype(np.uint8).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(max(0.0, -(p * np.log2(p)).sum()))


def _colourfulness(rgb: Image.Image) -> float:
    """The mean spread between a pixel's channels, over a COLOUR_SIDE grid of its pixels (a sample: cheap)."""
    red, green, blue = (np.asarray(channel, dtype=np.int16)
                        for channel in rgb.resize((COLOUR_SIDE, COLOUR_SIDE), Image.NEAREST).split())
    return float((np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)).mean())


# The spectra compared: the whole image of each against every spectrum of the other (a copy is a crop of the
# original, never the other way round in both).
_COMPARED = tuple((0, other) for other in range(len(CROPS))) + tuple((other, 0) for other in range(1, len(CROPS)))
_BLOCK = 512  # rows compared at once: two block x n matrices of floats (20 MB each for 10,000 images)


def _spectrum_matrix(signatures: list[Signature]) -> np.ndarray:
    """The signatures' spectra as an (n, len(CROPS), SPECTRUM_LENGTH) float32 array of unit vectors."""
    raw = np.frombuffer(b"".join(b"".join(s.spectra) for s in signatures), dtype=np.int8)
    vectors = raw.reshape(len(signatures), len(CROPS), SPECTRUM_LENGTH).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=2, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _chroma_matrix(signatures: list[Signature]) -> np.ndarray:
    """The signatures' chromaticities as an (n, CHROMA_LENGTH) array of fractions."""
    raw = np.frombuffer(b"".join(s.chroma for s in signatures), dtype=np.uint8)
    return raw.reshape(len(signatures), CHROMA_LENGTH).astype(np.float32) / 255


def near_duplicate_pairs(signatures: list[Signature], max_distance: float, others: list[Signature] | None = None
                         ) -> list[tuple[int, int, float]]:
    """The pairs of `signatures` at most `max_distance` apart, as (i, j, distance) with i < j; with `others`,
    the pairs (i, j) of signatures[i] and others[j] instead (e.g. "which val images near-copy a train image":
    the val signatures against the train signatures)."""
    within = others is None
    spectra, chroma = _spectrum_matrix(signatures), _chroma_matrix(signatures)
    other_spectra, other_chroma = (spectra, chroma) if within else (_spectrum_matrix(others), _chroma_matrix(others))
    pairs = []
    for start in range(0, len(signatures), _BLOCK):
        offset = start if within else 0  # within one list, only the pairs right of the diagonal
        distances = 1 - _block_similarity(spectra[start:start + _BLOCK], other_spectra[offset:])
        if within:
            distances[np.tril_indices(len(distances), 0, distances.shape[1])] = np.inf
        rows, columns = np.nonzero(distances <= max_distance)
        colour = np.abs(chroma[start + rows] - other_chroma[offset + columns]).max(axis=1)
        total = distances[rows, columns] + colour
        pairs += [(start + int(i), offset + int(j), round(max(0.0, float(d)), 4))
                  for i, j, d in zip(rows, columns, total) if d <= max_distance]
    return pairs


def _block_similarity(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The cosine of every row against every column, the largest over the _COMPARED spectra."""
    best = None
    for mine, theirs in _COMPARED:
        cosines = rows[:, mine] @ columns[:, theirs].T
        best = cosines if best is None else np.maximum(best, cosines, out=best)
    return best


@dataclass
class Thresholds:
    """When the report flags something; each a plain number (the web app's settings)."""
    near_duplicate_distance: float = 0.14  # two images at most this far apart (0 same, ~1 unrelated) are copies
    blurry: float = 100.0  # Laplacian variance at SIGNATURE_SIDE under this: blurry (a sharp photo: thousands)
    dark: float = 40.0  # mean grey level (0-255) under this: too dark
    bright: float = 220.0  # mean grey level (0-255) over this: too bright
    low_information: float = 2.0  # grey-level entropy (bits, 0-8) under this: flat or blank
    odd_size_factor: float = 3.0  # sqrt(width x height) over or under the dataset's median by this factor
    odd_aspect_factor: float = 1.8  # width / height over or under the dataset's median by this factor
    greyscale_colourfulness: float = 3.0  # mean channel spread (0-255) under this: a greyscale image
    greyscale_max_fraction: float = 0.2  # greyscale images are flagged only when at most this part of the set
    max_findings: int = 500  # each list of the report holds at most this many (the true number is in counts)


@dataclass
class Item:
    """One image of a dataset, as the report sees it (`key`: the caller's id for it)."""
    key: int
    class_name: str
    split: str
    width: int
    height: int
    signature: Signature
    sha256: str


PAIR_KINDS = ("duplicates", "leakage", "conflicts")
ISSUE_KINDS = ("blurry", "dark", "bright", "low_information", "odd_size", "odd_aspect", "greyscale")


def report(items: list[Item], thresholds: Thresholds) -> dict:
    """The dataset's quality report (JSON-able). A pair in the same class and split is a duplicate; in two
    splits it is leakage; in two classes a conflict; in two classes and two splits, both leakage and conflict."""
    pairs = _pair_findings(items, thresholds.near_duplicate_distance)
    issues = image_issues(items, thresholds)
    counts = {kind: len(pairs[kind]) for kind in PAIR_KINDS}
    counts.update({kind: sum(1 for issue in issues if issue["kind"] == kind) for kind in ISSUE_KINDS})
    cap = thresholds.max_findings
    return {"measured_at": SIGNATURE_SIDE, "thresholds": asdict(thresholds), "counts": counts,
            **{kind: pairs[kind][:cap] for kind in PAIR_KINDS}, "issues": _capped_issues(issues, cap),
            "balance": balance(items)}


def _pair_findings(items: list[Item], max_distance: float) -> dict[str, list[dict]]:
    found = {kind: [] for kind in PAIR_KINDS}
    pairs = near_duplicate_pairs([item.signature for item in items], max_distance)
    for i, j, distance in pairs:
        first, second = sorted((items[i], items[j]), key=lambda item: item.key)
        exact = first.sha256 == second.sha256
        finding = {"a": first.key, "b": second.key, "distance": 0.0 if exact else distance, "exact": exact}
        if first.split != second.split:
            found["leakage"].append({**finding, "splits": [first.split, second.split]})
        if first.class_name != second.class_name:
            found["conflicts"].append(finding)
        if first.split == second.split and first.class_name == second.class_name:
            found["duplicates"].append(finding)
    for findings in found.values():
        findings.sort(key=lambda finding: (finding["distance"], finding["a"], finding["b"]))
    return found


def image_issues(items: list[Item], thresholds: Thresholds) -> list[dict]:
    """Every image issue of `items`, in the order of the items."""
    if not items:
        return []
    median_side = float(np.median([math.sqrt(item.width * item.height) for item in items]))
    median_aspect = float(np.median([item.width / item.height for item in items]))
    greyscale = [item.signature.colourfulness < thresholds.greyscale_colourfulness for item in items]
    colour_set = sum(greyscale) <= thresholds.greyscale_max_fraction * len(items)
    issues = []
    for item, grey in zip(items, greyscale):
        issues += _issues_of(item, thresholds, median_side, median_aspect, grey and colour_set)
    return issues


def _issues_of(item: Item, limits: Thresholds, median_side: float, median_aspect: float,
               greyscale_in_colour: bool) -> list[dict]:
    s = item.signature
    checks = [("blurry", s.blur, limits.blurry, s.blur < limits.blurry),
              ("dark", s.brightness, limits.dark, s.brightness < limits.dark),
              ("bright", s.brightness, limits.bright, s.brightness > limits.bright),
              ("low_information", s.information, limits.low_information, s.information < limits.low_information),
              ("greyscale", s.colourfulness, limits.greyscale_colourfulness, greyscale_in_colour)]
    checks.append(_relative("odd_size", math.sqrt(item.width * item.height) / median_side, limits.odd_size_factor))
    checks.append(_relative("odd_aspect", item.width / item.height / median_aspect, limits.odd_aspect_factor))
    return [{"key": item.key, "kind": kind, "value": round(value, 3), "limit": round(limit, 3)}
            for kind, value, limit, flagged in checks if flagged]


def _relative(kind: str, ratio: float, factor: float) -> tuple[str, float, float, bool]:
    """A measure relative to the dataset's median, flagged past `factor` either way (the limit it passed)."""
    limit = factor if ratio >= 1 else 1 / factor
    return kind, ratio, limit, ratio > factor or ratio < 1 / factor


def _capped_issues(issues: list[dict], cap: int) -> list[dict]:
    """At most `cap` issues of each kind, in the order of the items."""
    taken = {kind: 0 for kind in ISSUE_KINDS}
    kept = []
    for issue in issues:
        if taken[issue["kind"]] < cap:
            taken[issue["kind"]] += 1
            kept.append(issue)
    return kept


def balance(items: list[Item]) -> dict:
    """The training images per class, and the largest count over the smallest (None without training images)."""
    train: dict[str, int] = {}
    for item in items:
        if item.split == "train":
            train[item.class_name] = train.get(item.class_name, 0) + 1
    ratio = round(max(train.values()) / min(train.values()), 3) if train else None
    return {"train": dict(sorted(train.items())), "ratio": ratio}
