"""Typed input: strict pydantic models, and their refusals as the studio's errors.

A model names each field's type and range once; the same model checks what a request sends and
describes it in the API's document. Types are strict: "1" and true are not whole numbers, an
unknown field and a null where none is meant are refused. A refusal is a `StudioError` naming the
field, with a message a person can read (a field's own message where it has one, from `Says`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import StudioError
from engine.messages import N_


@dataclass(frozen=True, eq=False)  # hashed by identity: its params are a dict
class Says:
    """A field's own message for a value outside its rules (its range, its choices); with `always`, for
    any refusal of the field, a missing or mistyped value too."""

    message: str
    params: dict = field(default_factory=dict)
    always: bool = False
    code: str | None = None  # the refusal's code, when not the model's own


class Strict(BaseModel):
    """A JSON object that takes only its own fields, each of its own type."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=False)
    # the code of a refused value, and the message for a field the model does not have
    refused_code: ClassVar[str] = "invalid_field"
    unknown_field: ClassVar[Says] = Says("Unknown field '%(name)s'.")

    @classmethod
    def parse(cls, data: Any):
        """`data` as this model; a StudioError naming the first field at fault otherwise."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise refusal(cls, exc) from None


# Refusals by pydantic's error type, for fields without their own message.
_BY_TYPE = {
    "int_type": N_("'%(name)s' must be a whole number."),
    "int_from_float": N_("'%(name)s' must be a whole number."),
    "int_parsing": N_("'%(name)s' must be a whole number."),
    "float_type": N_("'%(name)s' must be a number."),
    "float_parsing": N_("'%(name)s' must be a number."),
    "finite_number": N_("'%(name)s' must be a number."),
    "bool_type": N_("'%(name)s' must be true or false."),
    "bool_parsing": N_("'%(name)s' must be true or false."),
    "string_type": N_("'%(name)s' must be text."),
    "list_type": N_("'%(name)s' must be a list."),
    "dict_type": N_("'%(name)s' must be a JSON object."),
    "model_type": N_("'%(name)s' must be a JSON object."),
    "model_attributes_type": N_("'%(name)s' must be a JSON object."),
}
_BY_LIMIT = {
    "greater_than_equal": ("ge", N_("'%(name)s' must be at least %(limit)s.")),
    "greater_than": ("gt", N_("'%(name)s' must be above %(limit)s.")),
    "less_than_equal": ("le", N_("'%(name)s' must be at most %(limit)s.")),
    "less_than": ("lt", N_("'%(name)s' must be below %(limit)s.")),
    "string_too_short": ("min_length", N_("'%(name)s' must have at least %(limit)s characters.")),
    "string_too_long": ("max_length", N_("'%(name)s' must have at most %(limit)s characters.")),
    "too_short": ("min_length", N_("'%(name)s' must have at least %(limit)s items.")),
    "too_long": ("max_length", N_("'%(name)s' must have at most %(limit)s items.")),
}


def not_an_object() -> StudioError:
    """The refusal of a body that is no JSON object (a list, a number, no JSON at all)."""
    return StudioError("invalid_body", "Send a JSON object (Content-Type: application/json).", field="body")


def refusal(model: type[BaseModel], exc: ValidationError) -> StudioError:
    """The first of `exc`'s errors as the studio's error, naming the field (dotted for nested ones)."""
    error = exc.errors(include_url=False)[0]
    where = [str(part) for part in error["loc"]]
    if not where:
        return not_an_object()
    name = ".".join(where)
    kind = error["type"]
    owner, says = _field_of(model, error["loc"])
    if kind == "extra_forbidden":
        options = ", ".join(owner.model_fields) if owner else ""
        unknown = getattr(owner, "unknown_field", Strict.unknown_field)
        return StudioError("unknown_option", unknown.message, {"name": name, "options": options, **unknown.params},
                           field=name)
    code = getattr(owner, "refused_code", Strict.refused_code)
    if says is not None and (says.always or (kind not in _BY_TYPE and kind != "missing"
                                             and error.get("input", 0) is not None)):
        return StudioError(says.code or code, says.message, {"name": name, **says.params}, field=name)
    if kind == "missing":
        return StudioError("missing_field", "'%(name)s' is required.", {"name": name}, field=name)
    if error.get("input", 0) is None:
        return StudioError(code, "'%(name)s' cannot be null; leave it out to use the default.", {"name": name},
                           field=name)
    if kind in _BY_TYPE:
        return StudioError(code, _BY_TYPE[kind], {"name": name}, field=name)
    if kind in _BY_LIMIT:
        key, message = _BY_LIMIT[kind]
        return StudioError(code, message, {"name": name, "limit": (error.get("ctx") or {}).get(key, "")},
                           field=name)
    if kind in ("literal_error", "enum"):
        return StudioError(code, "'%(name)s' must be one of: %(options)s.",
                           {"name": name, "options": str((error.get("ctx") or {}).get("expected", ""))}, field=name)
    return StudioError(code, "'%(name)s' is not a valid value.", {"name": name}, field=name)


def _field_of(model: type[BaseModel], loc: tuple) -> tuple[type[BaseModel] | None, Says | None]:
    """The model that owns the field at `loc`, and the field's own message if it has one."""
    owner, says = model, None
    for part in loc:
        if owner is None or not isinstance(part, str):
            continue
        info = owner.model_fields.get(part)
        if info is None:
            return owner, None
        says = _says_of(info)
        nested = next(models_in(info.annotation), None)
        if part != loc[-1] and nested is not None:
            owner = nested
    return owner, says


def _says_of(info) -> Says | None:
    """The field's own message: in its metadata, or on a member of its union (`Annotated[int, Says(...)] | None`)."""
    found = [item for item in info.metadata if isinstance(item, Says)]
    for member in getattr(info.annotation, "__args__", ()) or ():
        found += [item for item in getattr(member, "__metadata__", ()) if isinstance(item, Says)]
    return found[0] if found else None


def models_in(annotation):
    """The models an annotation names, at any depth (`list[Item] | None` names Item)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from models_in(arg)
