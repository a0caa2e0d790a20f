"""Decide each file's class and split from its path inside the upload."""
from __future__ import annotations

from dataclasses import dataclass

from engine.messages import N_, Message

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}


@dataclass(frozen=True)
class Placement:
    """Where a file belongs: its class and split (None until auto-split decides)."""

    class_name: str
    split: str | None


def strip_wrapper(paths: list[list[str]]) -> list[list[str]]:
    """Drop one folder that wraps everything (`flowers/rose/a.jpg` -> `rose/a.jpg`)."""
    if not paths:
        return paths
    tops = {parts[0] for parts in paths}
    if len(tops) == 1 and all(len(parts) >= 3 for parts in paths):
        top = next(iter(tops))
        if top.lower() not in SPLIT_NAMES:
            return [parts[1:] for parts in paths]
    return paths


def has_split_folders(paths: list[list[str]]) -> bool:
    """True when the top folders name splits (train/val/test) rather than classes."""
    tops = {parts[0].lower() for parts in paths if len(parts) >= 3}
    return "train" in {SPLIT_NAMES.get(top) for top in tops}


def place(parts: list[str], split_layout: bool) -> Placement | Message:
    """Return the file's placement, or the reason it has none (a Message, which is a str)."""
    if split_layout:
        split = SPLIT_NAMES.get(parts[0].lower())
        if split is None:
            return Message(N_("outside the train/val/test folders"))
        if len(parts) < 3:
            return Message(N_("not inside a class folder"))
        return _checked(Placement(parts[1], split))
    if len(parts) < 2:
        return Message(N_("not inside a class folder"))
    return _checked(Placement(parts[0], None))


def _checked(placement: Placement) -> Placement | Message:
    rule = broken_class_name_rule(placement.class_name)
    return Message(_BROKEN_RULE[rule], {"max": MAX_CLASS_NAME} if rule == "too_long" else None) if rule else placement


MAX_CLASS_NAME = 255
# How a file's refusal words each rule of class names; the feedback form words them as its own errors.
_BROKEN_RULE = {"empty": N_("the class folder's name is empty"),
                "too_long": N_("the class folder's name is longer than %(max)s characters"),
                "slash": N_("the class folder's name contains a slash"),
                "hidden": N_("the class folder's name starts with a dot (hidden folders are skipped)"),
                "control": N_("the class folder's name contains control characters")}


def broken_class_name_rule(name: str) -> str | None:
    """The rule that keeps `name` from being a class (a folder name in an upload), or None when it can be one:
    "empty", "too_long", "slash", "hidden" or "control"."""
    if not name:
        return "empty"
    if len(name) > MAX_CLASS_NAME:
        return "too_long"
    if "/" in name or "\\" in name:
        return "slash"
    if name.startswith("."):
        return "hidden"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "control"
    return None
