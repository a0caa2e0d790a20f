"""Data quality: a small signature per image, and a dataset's quality report from those signatures.

The upload checker (engine.imagecheck) computes each image's `Signature` from the thumbnail it already makes
(no second decode); the report compares the signatures of a whole dataset: near duplicates within a class,
leakage across splits, conflicts across classes, image issues (blurry, dark, bright, almost no information, odd
size or aspect, greyscale in a colour set) and the class balance. numpy and Pillow only.

Near duplicates are found by shape and colour. Each image keeps its shape as the lowest 16x16 DCT coefficients
of its grey square (a low-passed image, a few hundred bytes); the report rebuilds from them the lowest 8x8
frequencies of the whole image and of CROPS of it (up to 10% cut off any side, in steps of 2.5%), so a copy
cropped by up to 10% per side lines up with a crop of its original within 1.25% a side. Resizing, recompression
and brightness barely move those frequencies.
Before comparing, the frequencies are WHITENED over the set being compared: the set's mean spectrum is taken
away and each frequency divided by its spread over the set, so what every image of the set shares (a centred
blob, a common background) stops counting and what tells them apart counts. The shape distance of two images is
1 - the largest cosine between the whole of one and a crop of the other (0: the same picture, about 1:
unrelated). A pair is a near copy when its shape distance plus the largest difference between the two images'
chromaticities (r and g over r + g + b, of a 3x3 grid of regions: brightness does not move them) is within the
threshold, AND its shape distance is at most NEIGHBOUR_RATIO of either image's distance to its NEIGHBOURS-th
nearest image: in a set whose distinct images look alike (digits), a copy must stand out of its crowd. (So a
burst of more than NEIGHBOURS copies of one picture is its own crowd: some of its pairs go unreported, each
copy usually still in some.)
The search runs in stages: every pair on a few crops (numpy's matrix product, block by block, one core), then
the candidates on the crops of 5% steps, then those still within twice their limit on every crop. The fine
steps matter to the crowd rule: a copy matched more closely stands further out of its crowd, so the ratio can
be strict enough to pass over most distinct look-alikes.
"""
from __future__ import annotations

import base64
import binascii
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

# The grey square, SIGNATURE_SIDE x SIGNATURE_SIDE, the shape and grey measures are taken at (the image squeezed
# to it). Blur depends on scale: it is measured at the image's own size up to SIGNATURE_SIDE a side (an image
# is shrunk to it, never enlarged: enlarging makes any small image read as blurry). The colour measures are
# taken of the checker's thumbnail (its longer side THUMB_SIZE at most).
SIGNATURE_SIDE = 128
SHAPE_FREQUENCIES = 16  # the lowest 16x16 DCT coefficients of the grey square are kept, the DC term left out
SHAPE_LENGTH = SHAPE_FREQUENCIES ** 2 - 1
COMPARED_FREQUENCIES = 8  # the lowest 8x8 frequencies (DC left out) of the whole and the crops are compared
COLOUR_SIDE = 64  # the grid of pixels colourfulness is measured on
CHROMA_GRID = 3  # the regions across and down whose chromaticity is kept
CHROMA_LENGTH = CHROMA_GRID * CHROMA_GRID * 2
# The crops' cuts along one axis, as fractions cut off (start, end): every pair of 0 to 10% in steps of 2.5% (a
# copy's crop is matched within 1.25% a side: coarser steps leave a heavily cropped copy's distance near a
# look-alike's).
CUT_STEPS = (0, 0.025, 0.05, 0.075, 0.1)
AXIS_CUTS = tuple((start, end) for start in CUT_STEPS for end in CUT_STEPS)


def _cut(start: float, end: float) -> int:
    """The index into AXIS_CUTS of the cut of `start` and `end` off an axis."""
    return AXIS_CUTS.index((start, end))


# The crops compared in the first stage, as indices into AXIS_CUTS (down, across): the whole image first, the
# centre with 5% and 10% cut off each side, and 10% cut off one side, for each side.
FIRST_CROPS = ((_cut(0, 0), _cut(0, 0)), (_cut(0.05, 0.05), _cut(0.05, 0.05)), (_cut(0.1, 0.1), _cut(0.1, 0.1)),
               (_cut(0, 0), _cut(0.1, 0)), (_cut(0.1, 0), _cut(0, 0)), (_cut(0, 0), _cut(0, 0.1)),
               (_cut(0, 0.1), _cut(0, 0)))
NEIGHBOURS = 10  # the crowd an image's near copies must stand out of: its 10 nearest images...
NEIGHBOUR_RATIO = 0.27  # ...a near copy is at most 0.27 of the way to the farthest of them (the pair's mean)
_MEASURES = ("blur", "brightness", "information", "colourfulness")


@dataclass(frozen=True)
class Signature:
    """What the report needs of one image, a few hundred bytes as JSON.

    shape: the lowest SHAPE_FREQUENCIES x SHAPE_FREQUENCIES DCT coefficients of the grey square, DC left out,
    each times (1 + its two frequencies) so the fine ones keep their precision, scaled so the largest is 127, in
    int8 (bytes; all 0 for a flat image).
    chroma: per region of a CHROMA_GRID x CHROMA_GRID grid, r / (r + g + b) and g / (r + g + b) times 255, in
    uint8 (bytes).
    blur: variance of the Laplacian of the grey image at its own size, at most SIGNATURE_SIDE a side (low:
    blurry). brightness: mean grey level, 0-255. information: grey-level entropy in bits, 0 (flat) to 8.
    colourfulness: mean spread between the RGB channels of a pixel, 0-255, 0 for a greyscale image.
    """
    shape: bytes
    chroma: bytes
    blur: float
    brightness: float
    information: float
    colourfulness: float

    def to_json(self) -> dict:
        return {"shape": base64.b64encode(self.shape).decode(), "chroma": base64.b64encode(self.chroma).decode(),
                **{name: round(getattr(self, name), 3) for name in _MEASURES}}

    @classmethod
    def from_json(cls, data: object) -> "Signature":
        """The signature `data` holds, or ValueError when it is not exactly a to_json() of one: it comes back
        from the untrusted checker process."""
        if not isinstance(data, dict) or set(data) != {"shape", "chroma", *_MEASURES}:
            raise ValueError("a signature is an object with shape, chroma and measures")
        if not isinstance(data["shape"], str) or not isinstance(data["chroma"], str):
            raise ValueError("a signature's shape and chroma are strings")
        shape, chroma = _decoded(data["shape"], SHAPE_LENGTH), _decoded(data["chroma"], CHROMA_LENGTH)
        measures = {name: data[name] for name in _MEASURES}
        for name, value in measures.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"a signature's {name} is a finite number")
            if value < 0:
                raise ValueError(f"a signature's {name} is not negative")
        return cls(shape, chroma, **{name: float(value) for name, value in measures.items()})


def _decoded(value: str, length: int) -> bytes:
    try:
        decoded = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("a signature's shape and chroma are base64") from None
    if len(decoded) != length:
        raise ValueError(f"a signature's shape or chroma of {len(decoded)} bytes, not {length}")
    return decoded


def signature(image: Image.Image) -> Signature:
    """The signature of an upright RGB image (the checker's thumbnail, before it is encoded). The shape and the
    grey measures are taken of one grey square of SIGNATURE_SIDE (the image squeezed to it), blur of the grey
    image at its own size up to SIGNATURE_SIDE a side."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    grey = rgb.convert("L")
    square = np.asarray(grey.resize((SIGNATURE_SIDE, SIGNATURE_SIDE), Image.BILINEAR), dtype=np.float32)
    return Signature(shape=_shape(square), chroma=_chroma(rgb), blur=_laplacian_variance(_blur_image(grey)),
                     brightness=float(square.mean()), information=_entropy(square),
                     colourfulness=_colourfulness(rgb))


def _cosines(frequencies: int, low: float, high: float) -> np.ndarray:
    """The DCT's lowest `frequencies` cosines over the part [low, high] of a SIGNATURE_SIDE axis, sampled at its
    pixels (a pixel on the edge by the part of it inside); 0 outside. Summing over every pixel of the part is the
    low-pass filter: no resize is needed, and no aliasing comes from one."""
    edges = np.arange(SIGNATURE_SIDE + 1) / SIGNATURE_SIDE
    start, end = np.maximum(edges[:-1], low), np.minimum(edges[1:], high)
    inside = np.clip(end - start, 0, None) * SIGNATURE_SIDE
    place = ((start + end) / 2 - low) / (high - low)
    frequency = np.arange(frequencies)[:, None]
    cosines = np.cos(np.pi * frequency * place[None, :]) * inside[None, :]
    cosines[0] /= np.sqrt(2)  # the DCT's own weight of its constant term against the others
    return cosines


_SHAPE_COSINES = _cosines(SHAPE_FREQUENCIES, 0, 1).astype(np.float32)
# Each kept coefficient is stored times (1 + its two frequencies): a photo's coefficients fall off about so.
_SHAPE_WEIGHTS = (1 + np.add.outer(np.arange(SHAPE_FREQUENCIES), np.arange(SHAPE_FREQUENCIES))).astype(np.float32)


def _shape(square: np.ndarray) -> bytes:
    """The low DCT coefficients of `square` (DC left out), weighted, the largest 127, in int8."""
    coefficients = _SHAPE_COSINES @ square @ _SHAPE_COSINES.T
    coefficients[0, 0] = 0
    # A flat image (under half a grey level of shape, e.g. its JPEG noise) has no shape: it matches nothing.
    if np.linalg.norm(coefficients) <= 0.5 * square.size:
        return bytes(SHAPE_LENGTH)
    weighted = (coefficients * _SHAPE_WEIGHTS).ravel()[1:]
    return np.round(weighted * 127 / np.abs(weighted).max()).astype(np.int8).tobytes()


def _chroma(rgb: Image.Image) -> bytes:
    """r / (r + g + b) and g / (r + g + b) of each region of a CHROMA_GRID grid, times 255, in uint8."""
    regions = np.asarray(rgb.resize((CHROMA_GRID, CHROMA_GRID), Image.BOX), dtype=np.float32) + 1
    chromaticity = regions[..., :2] / regions.sum(axis=2, keepdims=True)
    return np.round(chromaticity * 255).astype(np.uint8).tobytes()


def _blur_image(grey: Image.Image) -> np.ndarray:
    """The grey image blur is measured on: each side shrunk to SIGNATURE_SIDE at most, never enlarged."""
    size = (min(grey.width, SIGNATURE_SIDE), min(grey.height, SIGNATURE_SIDE))
    return np.asarray(grey if size == grey.size else grey.resize(size, Image.BILINEAR), dtype=np.float32)


def _laplacian_variance(grey: np.ndarray) -> float:
    """The variance of the Laplacian over the inner pixels (0 for an image under 3 pixels a side: no inside)."""
    if min(grey.shape) < 3:
        return 0.0
    laplacian = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1])
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


# The comparison. Per AXIS_CUTS entry, the map from the kept coefficients along one axis to the compared
# frequencies of that part of the axis: the crop's cosines times the inverse of the kept ones (the low-passed
# image the kept coefficients stand for, cut).
_RECONSTRUCT = np.linalg.pinv(_cosines(SHAPE_FREQUENCIES, 0, 1))
_AXIS_MAPS = np.stack([_cosines(COMPARED_FREQUENCIES, start, 1 - end) @ _RECONSTRUCT
                       for start, end in AXIS_CUTS]).astype(np.float32)
_SPECTRUM_LENGTH = COMPARED_FREQUENCIES ** 2 - 1
_BLOCK = 512  # rows compared at once: a few block x n matrices of floats (20 MB each for 10,000 images)
_CHUNK_CROPS = 160_000  # pairs x crops compared at once in the second stage (about 40 MB a side)
_MARGIN = 0.2  # how much closer the second stage's crops may line a pair up than the first stage's
_PRIOR_WEIGHT = 8  # whitening: the set's statistics weigh as this many images against a plain cosine's


def _coefficients(signatures: list[Signature]) -> np.ndarray:
    """The signatures' kept coefficients, unweighted, as an (n, SHAPE_FREQUENCIES, SHAPE_FREQUENCIES) array."""
    raw = np.frombuffer(b"".join(bytes(1) + s.shape for s in signatures), dtype=np.int8)
    return raw.reshape(len(signatures), SHAPE_FREQUENCIES, SHAPE_FREQUENCIES).astype(np.float32) / _SHAPE_WEIGHTS


def _crop_spectra(coefficients: np.ndarray, crops: tuple[tuple[int, int], ...]) -> np.ndarray:
    """The unit spectra (n, len(crops), _SPECTRUM_LENGTH) of the given crops (AXIS_CUTS indices down, across).
    Every cut of each axis at once, as two large matrix products (the fast path of numpy's)."""
    count, kept, compared = len(coefficients), SHAPE_FREQUENCIES, COMPARED_FREQUENCIES
    downs, acrosses = sorted({down for down, _ in crops}), sorted({across for _, across in crops})
    # (downs x compared, kept) @ (kept, n x kept): each image's rows cut and brought to the compared frequencies
    cut_down = (_AXIS_MAPS[downs].reshape(-1, kept) @ coefficients.transpose(1, 0, 2).reshape(kept, -1))
    cut_down = cut_down.reshape(len(downs) * compared * count, kept)
    cut = cut_down @ _AXIS_MAPS[acrosses].reshape(-1, kept).T  # then its columns
    cut = cut.reshape(len(downs), compared, count, len(acrosses), compared).transpose(2, 0, 3, 1, 4)
    spectra = cut[:, [downs.index(down) for down, _ in crops], [acrosses.index(across) for _, across in crops]]
    spectra = spectra.reshape(count, len(crops), compared * compared)[..., 1:]
    norms = np.linalg.norm(spectra, axis=2, keepdims=True)
    return np.divide(spectra, norms, out=np.zeros_like(spectra), where=norms > 1e-6)


@dataclass(frozen=True)
class _Whitening:
    """The compared set's mean spectrum and spread per frequency, shrunk towards none (mean 0, the spread of
    random unit vectors) by _PRIOR_WEIGHT images: a small set has no reliable statistics."""
    mean: np.ndarray
    spread: np.ndarray

    @classmethod
    def of(cls, wholes: np.ndarray) -> "_Whitening":
        count = len(wholes)
        shrink = count / (count + _PRIOR_WEIGHT)
        variance = wholes.var(axis=0) if count else np.zeros(_SPECTRUM_LENGTH, np.float32)
        mean = wholes.mean(axis=0) if count else np.zeros(_SPECTRUM_LENGTH, np.float32)
        return cls(mean * shrink, np.sqrt(variance * shrink + (1 - shrink) / _SPECTRUM_LENGTH))

    def __call__(self, spectra: np.ndarray) -> np.ndarray:
        """The spectra whitened, as unit vectors (a shapeless image's stays 0: it matches nothing)."""
        white = (spectra - self.mean) / self.spread
        norms = np.linalg.norm(white, axis=-1, keepdims=True)
        shapeless = ~spectra.any(axis=-1, keepdims=True)
        return np.where(shapeless, 0, white / np.maximum(norms, 1e-6)).astype(np.float32)


def _chroma_matrix(signatures: list[Signature]) -> np.ndarray:
    """The signatures' chromaticities as an (n, CHROMA_LENGTH) array of fractions."""
    raw = np.frombuffer(b"".join(s.chroma for s in signatures), dtype=np.uint8)
    return raw.reshape(len(signatures), CHROMA_LENGTH).astype(np.float32) / 255


class _Side:
    """One list of compared signatures: its coefficients, first-stage whitened spectra and chromaticities."""

    def __init__(self, signatures: list[Signature], whitening: _Whitening | None = None):
        self.coefficients = _coefficients(signatures)
        self.first = _crop_spectra(self.coefficients, FIRST_CROPS)
        self.whitening = whitening or _Whitening.of(self.first[:, 0])
        self.first = self.whitening(self.first)
        self.chroma = _chroma_matrix(signatures)


def near_duplicate_pairs(signatures: list[Signature], max_distance: float, others: list[Signature] | None = None
                         ) -> list[tuple[int, int, float]]:
    """The pairs of `signatures` that are near copies at most `max_distance` apart, as (i, j, distance) with
    i < j; with `others`, the pairs (i, j) of signatures[i] and others[j] instead (e.g. "which val images
    near-copy a train image": the val signatures against the train signatures). The set compared (both lists)
    is what the spectra are whitened over and what each image's crowd is."""
    if others is None:
        rows = columns = _Side(signatures)
    else:
        whitening = _Whitening.of(np.concatenate([_crop_spectra(_coefficients(part), FIRST_CROPS[:1])[:, 0]
                                                  for part in (signatures, others)]))
        rows, columns = _Side(signatures, whitening), _Side(others, whitening)
    candidates, row_crowd, column_crowd = _first_stage(rows, columns, others is None, max_distance + _MARGIN)
    i, j, first = candidates
    crowd = (row_crowd[i] + column_crowd[j]) / 2
    keep = first <= NEIGHBOUR_RATIO * crowd + _MARGIN
    i, j, crowd = i[keep], j[keep], crowd[keep]
    chroma = np.abs(rows.chroma[i] - columns.chroma[j]).max(axis=1)
    limit = np.minimum(max_distance - chroma, NEIGHBOUR_RATIO * crowd)  # the most shape distance a copy has
    shape = _second_stage(rows, columns, i, j, _COARSE_CROPS)
    # Only the pairs a finer crop may still bring within their limit are compared on every crop.
    refine = np.nonzero((shape > limit) & (shape <= _REFINE_REACH * limit))[0]
    shape[refine] = _second_stage(rows, columns, i[refine], j[refine], _EVERY_CROP)
    total = shape + chroma
    found = (total <= max_distance) & (shape <= NEIGHBOUR_RATIO * crowd)
    return [(int(a), int(b), round(max(0.0, float(d)), 4)) for a, b, d in zip(i[found], j[found], total[found])]


def _first_stage(rows: _Side, columns: _Side, within: bool, reach: float):
    """Every pair's first-stage shape distance (the whole of each against FIRST_CROPS of the other): the pairs at
    most `reach` apart as (i, j, distance) arrays, and each row's and column's crowd (its distance to its
    NEIGHBOURS-th nearest image; infinite when the set has fewer others)."""
    found_i, found_j, found_distance = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    row_crowd = np.full(len(rows.first), np.inf, np.float32)
    column_nearest = np.full((NEIGHBOURS, len(columns.first)), np.inf, np.float32)
    for start in range(0, len(rows.first), _BLOCK):
        distances = 1 - _block_similarity(rows.first[start:start + _BLOCK], columns.first)
        if within:
            block = np.arange(len(distances))
            distances[block, start + block] = np.inf  # an image is not its own neighbour
        row_crowd[start:start + len(distances)] = _nth_smallest(distances, axis=1)
        if not within:
            column_nearest = np.sort(np.concatenate([column_nearest, distances]), axis=0)[:NEIGHBOURS]
        else:  # within one list, only the pairs right of the diagonal
            distances[np.tril_indices(len(distances), start, distances.shape[1])] = np.inf
        i, j = np.nonzero(distances <= reach)
        found_i.append(start + i)
        found_j.append(j)
        found_distance.append(distances[i, j])
    column_crowd = row_crowd if within else column_nearest[-1]
    return (np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_distance)), row_crowd, column_crowd


def _nth_smallest(distances: np.ndarray, axis: int) -> np.ndarray:
    """The NEIGHBOURS-th smallest distance along `axis` (infinite when there are fewer)."""
    if distances.shape[axis] < NEIGHBOURS:
        return np.full(distances.shape[1 - axis], np.inf, np.float32)
    return np.partition(distances, NEIGHBOURS - 1, axis=axis).take(NEIGHBOURS - 1, axis=axis)


def _block_similarity(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The cosine of every row against every column: the largest of the whole of one against each first-stage
    crop of the other, both ways."""
    best = rows[:, 0] @ columns[:, 0].T
    for crop in range(1, len(FIRST_CROPS)):
        np.maximum(best, rows[:, 0] @ columns[:, crop].T, out=best)
        np.maximum(best, rows[:, crop] @ columns[:, 0].T, out=best)
    return best


_EVERY_CROP = tuple((down, across) for down in range(len(AXIS_CUTS)) for across in range(len(AXIS_CUTS)))
# The second stage's crops: those of cuts in steps of 5% (a ninth of every crop); a pair they leave past its
# limit, but within _REFINE_REACH times it, is compared on every crop (cuts in steps of 2.5%), so the look-alikes
# of a large set are not all cut 625 ways.
_COARSE_CUTS = tuple(index for index, (start, end) in enumerate(AXIS_CUTS) if start in (0, 0.05, 0.1)
                     and end in (0, 0.05, 0.1))
_COARSE_CROPS = tuple((down, across) for down in _COARSE_CUTS for across in _COARSE_CUTS)
_REFINE_REACH = 2.0


def _second_stage(rows: _Side, columns: _Side, i: np.ndarray, j: np.ndarray,
                  crops: tuple[tuple[int, int], ...]) -> np.ndarray:
    """The shape distance of the pairs (rows i, columns j): the whole of each against each of `crops` (the
    whole first) of the other. Each chunk's images are cut once, however many of its pairs they are in."""
    distances = np.empty(len(i), np.float32)
    chunk = max(1, _CHUNK_CROPS // len(crops))
    for start in range(0, len(i), chunk):
        mine, theirs = i[start:start + chunk], j[start:start + chunk]
        row_images, row_of = np.unique(mine, return_inverse=True)
        column_images, column_of = np.unique(theirs, return_inverse=True)
        a = rows.whitening(_crop_spectra(rows.coefficients[row_images], crops))[row_of]
        b = rows.whitening(_crop_spectra(columns.coefficients[column_images], crops))[column_of]
        best = np.maximum(np.einsum("pk,pck->pc", a[:, 0], b).max(axis=1),
                          np.einsum("pk,pck->pc", b[:, 0], a).max(axis=1))
        distances[start:start + len(mine)] = 1 - best
    return distances


@dataclass
class Thresholds:
    """When the report flags something; each a plain number (the web app's settings)."""
    near_duplicate_distance: float = 0.25  # two images at most this far apart (0 same, ~1 unrelated) are copies
    # Laplacian variance (at the image's size, SIGNATURE_SIDE a side at most) under this: blurry (a sharp photo:
    # thousands)
    blurry: float = 100.0
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
    splits it is leakage; in two classes a conflict; in two classes and two splits, both leakage and conflict.
    `measured_at`: the most pixels a side the measures were taken at (SIGNATURE_SIDE; a smaller image's blur at
    its own size)."""
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
    pairs = {(i, j): distance for i, j, distance in near_duplicate_pairs([item.signature for item in items],
                                                                         max_distance)}
    pairs.update(dict.fromkeys(_exact_pairs(items), 0.0))
    for (i, j), distance in pairs.items():
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


def _exact_pairs(items: list[Item]) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, of items with the same bytes: copies even when they have no shape to compare
    (a flat image)."""
    by_content: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_content.setdefault(item.sha256, []).append(index)
    return [(i, j) for same in by_content.values() for n, i in enumerate(same) for j in same[n + 1:]]


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
