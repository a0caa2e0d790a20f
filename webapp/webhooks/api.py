"""JSON API of webhook endpoints and their deliveries (admins only: webapp.accounts.policy)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from webapp import paging
from webapp.contract import operation, parsed_body, parsed_query
from webapp.extensions import db
from webapp.models import WebhookDelivery, WebhookEndpoint
from webapp.webhooks import schemas, services
from webapp.webhooks.events import EVENTS

api = Blueprint("webhooks_api", __name__, url_prefix="/api/webhooks")
TAGS = ("webhooks",)


@api.get("")
@operation(answers={200: schemas.EndpointList}, tags=TAGS)
def index():
    """Every endpoint, and the events one can want."""
    rows = db.session.scalars(db.select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    return jsonify({"endpoints": [services.endpoint_json(row) for row in rows], "events": list(EVENTS)})


@api.post("")
@operation(body=schemas.EndpointIn, answers={201: schemas.EndpointWithSecret}, errors=("webhook_url_refused",),
           tags=TAGS)
def create():
    """Register an endpoint; its signing secret is in this answer only."""
    new = parsed_body()
    row, secret = services.create_endpoint(new.url, new.description, new.events, new.enabled)
    return jsonify({**services.endpoint_json(row), "secret": secret}), 201


@api.get("/<int:endpoint_id>")
@operation(answers={200: schemas.EndpointOut}, errors=("webhook_not_found",), tags=TAGS)
def show(endpoint_id: int):
    """One endpoint."""
    return jsonify(services.endpoint_json(services.get_endpoint(endpoint_id)))


@api.put("/<int:endpoint_id>")
@operation(body=schemas.EndpointChange, answers={200: schemas.EndpointOut},
           errors=("webhook_not_found", "webhook_url_refused"), tags=TAGS)
def update(endpoint_id: int):
    """Change an endpoint's URL, description, events or whether it is on (the fields given)."""
    row = services.get_endpoint(endpoint_id)
    changes = parsed_body().model_dump(exclude_unset=True, exclude_none=True)
    return jsonify(services.endpoint_json(services.update_endpoint(row, changes)))


@api.delete("/<int:endpoint_id>")
@operation(answers={200: schemas.EndpointDeleted}, errors=("webhook_not_found",), tags=TAGS)
def delete(endpoint_id: int):
    """Delete an endpoint, its deliveries and its secret."""
    services.delete_endpoint(services.get_endpoint(endpoint_id))
    return jsonify({"deleted": endpoint_id})


@api.post("/<int:endpoint_id>/rotate")
@operation(answers={200: schemas.EndpointWithSecret}, errors=("webhook_not_found",), tags=TAGS)
def rotate(endpoint_id: int):
    """A new signing secret (in this answer only); the old one still signs for WEBHOOK_SECRET_GRACE_SECONDS."""
    row = services.get_endpoint(endpoint_id)
    secret = services.rotate_secret(row)
    return jsonify({**services.endpoint_json(row), "secret": secret})


@api.post("/<int:endpoint_id>/test")
@operation(answers={202: schemas.DeliveryOut}, errors=("webhook_not_found",), tags=TAGS)
def test(endpoint_id: int):
    """Send a `test` event to this endpoint; 202 with its delivery, sent by a worker."""
    delivery = services.send_test(services.get_endpoint(endpoint_id))
    return jsonify(services.delivery_json(delivery, [])), 202


@api.get("/<int:endpoint_id>/deliveries")
@operation(query=paging.Paged, answers={200: schemas.DeliveryList}, errors=("webhook_not_found",), tags=TAGS)
def deliveries(endpoint_id: int):
    """An endpoint's deliveries, newest first, a page at a time (`limit`, `before`), each with its tries."""
    row = services.get_endpoint(endpoint_id)
    rows, next_before = paging.fetch(db.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id),
                                     WebhookDelivery.id, parsed_query().page())
    tries = services.tries_of([one.id for one in rows])
    return jsonify({"deliveries": [services.delivery_json(one, tries[one.id]) for one in rows],
                    "next_before": next_before})


@api.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/resend")
@operation(answers={202: schemas.DeliveryOut},
           errors=("webhook_not_found", "webhook_delivery_not_found", "webhook_delivery_pending"), tags=TAGS)
def resend(endpoint_id: int, delivery_id: int):
    """Send an ended delivery again, with the same message id; 202 with it."""
    row = services.resend(services.get_delivery(services.get_endpoint(endpoint_id), delivery_id))
    return jsonify(services.delivery_json(row, services.tries_of([row.id])[row.id])), 202
