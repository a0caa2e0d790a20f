"""The prediction API's models: the image and options it reads (with its own bounded parser), and its answer."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from spectree.model_adapter.pydantic_adapter import BaseFile

from engine.config import MAX_VERSION
from engine.schema import Says
from engine.runtimes import RUNTIMES
from webapp.contract import Answer, Query
from webapp.feedback.schemas import Arm
from webapp.paging import Whole

MAX_TOP_K = 1000
EXPLAIN_CHOICES = ("0", "1", "png")


class PredictOptions(Query):
    """What a prediction may ask besides the image: form fields, or query parameters (a form field of the
    same name wins)."""

    version: Whole(1, MAX_VERSION, optional=True) = Field(
        None, description="Answer with this model version (signed-in callers only); by default the release "
                          "chooses (its production version, or its candidate for a share of the clients).")
    top_k: Whole(1, MAX_TOP_K) = Field(5, description="How many classes to list, most likely first (at most the "
                                                      "model's classes).")
    explain: Annotated[Literal[EXPLAIN_CHOICES], Says("'explain' must be one of %(choices)s.",
                                                      {"choices": ", ".join(EXPLAIN_CHOICES)}, always=True,
                                                      code="invalid_field")] = Field(
        "0", description="`1`: also answer where the model looked (`explanation`: the top class's activation map); "
                         "`png`: the same with the map as a PNG heat map. A version exported before explanations "
                         "answers 409 `explanation_unavailable`. Without it nothing extra is computed.")


class PredictForm(PredictOptions):
    """A prediction request as multipart/form-data. The image may also be the whole body instead, with an
    image Content-Type (or application/octet-stream) and the options in the query. The
    `X-Client-Id` header (or the predict page's cookie) keeps one client on one arm of the release."""

    image: BaseFile = Field(description="The image (JPEG, PNG, GIF, BMP or WebP), at most PREDICT_MAX_BYTES.")


class ClassScore(Answer):
    class_: str = Field(alias="class")
    confidence: float = Field(description="The model's probability for the class, 0 to 1.")


class CropRegion(Answer):
    """The part of the upright image the model sees (its centre crop), as fractions of the image's sides."""

    x: float
    y: float
    width: float
    height: float


class Explanation(Answer):
    """Where the model looked: the class activation map of the top class, the head applied at each location of
    the last feature map, scaled to 0..1 (1 where the class had most say)."""

    class_: str = Field(alias="class", description="The class the map explains: the most likely one.")
    exact: bool = Field(description="True for a linear head (resnet: the map's mean is the class's score); false "
                                    "for mobilenet_v3 and PP-LCNet, whose non-linear heads make it an approximation.")
    size: list[int] = Field(description="[rows, columns] of the map (the last feature map's grid).")
    map: list[list[float]] = Field(description="The map, rows top to bottom, 0 to 1, rounded to 3 decimals.")
    region: CropRegion = Field(description="Where the map lies on the image: the centre crop the model sees.")
    png: str | None = Field(None, description="With `explain=png`: the map as an RGBA PNG heat map, one pixel per "
                                              "cell (base64), to be scaled up smoothly over `region`.")


class Prediction(Answer):
    id: str = Field(description="The answer's id: send feedback on it to POST /api/predictions/{id}/feedback "
                                "for a while (FEEDBACK_HOLD_SECONDS).")
    class_: str | None = Field(alias="class", description="The predicted class; null when the model abstained.")
    confidence: float = Field(description="The top class's probability, 0 to 1.")
    abstained: bool = Field(description="True when the top class's probability is below the version's "
                                        "threshold or that class's own: the answer names no class (`top_k` still "
                                        "lists them).")
    abstained_by: Literal["version", "class"] | None = Field(
        description="The threshold that made it abstain: the version's own, or the per-class threshold of the "
                    "top class; null when it answered.")
    top_k: list[ClassScore]
    model_version: int = Field(description="The model version that answered.")
    runtime: Literal[RUNTIMES] = Field(description="The inference runtime that ran the model.")
    arm: Arm = Field(description="How the version was chosen: the release's `production` or `candidate` arm, or "
                                 "`pinned` by the request's `version`.")
    elapsed_ms: float = Field(description="Time spent from decoding the image to the answer.")
    explanation: Explanation | None = Field(None, description="With `explain=1` or `explain=png` only.")


class ExplainQuery(Query):
    """Which dataset image to explain."""

    image: Whole(1, MAX_VERSION ** 2) = Field(description="The dataset image's id (as the job's confusion-matrix "
                                                         "cells list them).")


class ImageExplanation(Answer):
    """A model version's answer for a dataset image, with where it looked (nothing is recorded)."""

    image_id: int
    model_version: int
    runtime: Literal[RUNTIMES]
    top_k: list[ClassScore]
    explanation: Explanation
