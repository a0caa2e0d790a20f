"""Deliveries are signed as the Standard Webhooks specification signs them: the reference library verifies
them, with the current secret and, during a rotation's grace, with the replaced one too."""
from __future__ import annotations

import json
import stat
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from webapp.storage import data_dir
from webapp.webhooks import keys, signing

BODY = json.dumps({"type": "test", "timestamp": "2026-12-06T05:00:00Z", "data": {"ok": True}})


def signed(secrets: list[str], message_id: str = "msg_1") -> dict:
    return signing.headers(secrets, message_id, int(time.time()), BODY)


def test_a_signature_verifies_with_the_reference_library():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    headers = signed([secret])
    assert headers["webhook-signature"].startswith("v1,") and headers["webhook-id"] == "msg_1"
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("true", "false"), headers)


def test_the_secret_lives_in_a_file_of_its_own_readable_by_its_owner_only(app):
    with app.app_context():
        secret = keys.create(7)
        path = data_dir().webhook_secret(7)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and secret in path.read_text()
        assert keys.signing_secrets(7) == [secret]
        keys.remove(7)
        assert not path.exists()


def test_both_secrets_verify_during_a_rotations_grace_and_the_old_one_stops_after(app):
    with app.app_context():
        old = keys.create(3)
        new = keys.rotate(3, grace_seconds=3600)
        assert keys.signing_secrets(3) == [new, old]
        headers = signed(keys.signing_secrets(3))
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):
            assert Webhook(secret).verify(BODY, headers)["data"] == {"ok": True}
        newest = keys.rotate(3, grace_seconds=-1)  # a grace already over
        assert keys.signing_secrets(3) == [newest]
        with pytest.raises(WebhookVerificationError):
            Webhook(new).verify(BODY, signed(keys.signing_secrets(3)))
