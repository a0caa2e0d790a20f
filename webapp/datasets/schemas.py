"""The datasets API's models: the upload form (read by its own streamed parser, described here) and the
datasets as the API shows them, while their upload is checked, once ready, and when the check failed."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from spectree.model_adapter.pydantic_adapter import BaseFile

from webapp.contract import Answer
from webapp.datasets.services import MAX_NAME_LENGTH
from webapp.statuses import DatasetStatus

Status = Literal[tuple(status.value for status in DatasetStatus)]


def _no_default(schema: dict) -> None:
    """A form part that may be left out has no value then (not null): the document names no default."""
    schema.pop("default", None)


class DatasetUpload(BaseModel):
    """A dataset upload (multipart/form-data, streamed to disk): one .zip in `archive`, or a folder's
    images in `files`, each named by its path in the folder; not both."""

    archive: BaseFile = Field(
        None, json_schema_extra=_no_default,
        description="A .zip of class folders (`rose/1.jpg`) or of split folders (`train/rose/1.jpg`, `val/...`).")
    files: list[BaseFile] = Field(
        None, json_schema_extra=_no_default,
        description="The images of a folder, each part's file name its path in the folder (`rose/1.jpg`).")
    name: str = Field(None, json_schema_extra=_no_default, max_length=MAX_NAME_LENGTH,
                      description="The dataset's name; by default the archive's or the folder's name.")


class ClassCount(Answer):
    name: str
    train: int
    val: int
    test: int


class RejectedFile(Answer):
    path: str = Field(description="The file's path in the upload.")
    reason: str = Field(description="Why it was left out, in the request's language.")


class DuplicateFile(Answer):
    path: str = Field(description="The file stored once, under its first path.")
    duplicate_of: str = Field(description="The path of the first file with the same bytes, the one kept.")
    same_class: bool = Field(description="False when the two paths name different classes.")


class CheckProgress(Answer):
    done: int = Field(description="Files checked so far.")
    total: int = Field(description="Files in the upload.")


class DatasetSummary(Answer):
    id: int
    name: str
    status: Status = Field(description="`processing` while the upload is checked, then `ready`, or `failed` "
                                        "with `error` saying why.")
    num_images: int = Field(description="Images kept (0 until the check is done).")
    num_classes: int
    created_at: datetime | None


class DatasetOut(DatasetSummary):
    layout: Literal["classes", "splits"] = Field(description="`splits` when the upload had train/val/test "
                                                             "folders, else `classes`.")
    content_hash: str | None = Field(description="A hash of the images, classes and splits kept; null until the "
                                                 "dataset is ready.")
    classes: list[ClassCount] = Field(description="Images per class and split, by class name; empty until ready.")
    rejected: list[RejectedFile]
    warnings: list[str] = Field(description="Things to know about the data, in the request's language.")
    duplicates: list[DuplicateFile]
    error: str | None = Field(description="Why the check failed (status `failed`), in the request's language.")
    progress: CheckProgress


class DatasetList(Answer):
    datasets: list[DatasetSummary]
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")


class DatasetDeleted(Answer):
    deleted: int
