"""The webhook API's models: an endpoint asked for or changed, and endpoints and deliveries as shown."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engine.schema import Says, Strict
from webapp.contract import Answer
from webapp.statuses import DeliveryStatus
from webapp.webhooks.events import EVENTS

Event = Literal[EVENTS]
Url = Annotated[str, Field(min_length=1, max_length=2000), Says("Give the endpoint's URL (http:// or https://).",
                                                                 always=True)]
Description = Annotated[str, Field(max_length=500), Says("A description has at most 500 characters.")]
Events = Annotated[list[Event], Field(min_length=1, max_length=len(EVENTS)), Says(
    "Choose at least one event of %(options)s.", {"options": ", ".join(EVENTS)}, always=True)]


class EndpointIn(Strict):
    """A new endpoint: where to send, what it is for, which events it wants, and whether it is on."""

    url: Url
    description: Description = ""
    events: Events
    enabled: bool = True


class EndpointChange(Strict):
    """The fields to change; those left out stay."""

    url: Url | None = None
    description: Description | None = None
    events: Events | None = None
    enabled: bool | None = None


class EndpointOut(Answer):
    id: int
    url: str
    description: str
    events: list[str]
    enabled: bool
    created_by: str | None
    created_at: str
    rotated_at: str | None


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret (`whsec_...`): shown in this answer only.")


class EndpointList(Answer):
    endpoints: list[EndpointOut]
    events: list[str]


class EndpointDeleted(Answer):
    deleted: int


class TryOut(Answer):
    started_at: str
    status_code: int | None
    duration_ms: float
    error: str | None


class DeliveryOut(Answer):
    id: int
    message_id: str
    endpoint_id: int
    event: str
    status: Literal[tuple(status.value for status in DeliveryStatus)]
    payload: dict
    created_at: str
    next_attempt_at: str | None
    last_status_code: int | None
    failures: int
    error: str | None
    finished_at: str | None
    tries: list[TryOut]


class DeliveryList(Answer):
    deliveries: list[DeliveryOut]
    next_before: int | None
