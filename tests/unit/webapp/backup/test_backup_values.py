"""The database copy keeps every value's type on SQLite and on PostgreSQL: SQL NULL apart from JSON's null,
datetimes to the microsecond, booleans, floats to the last bit and text in any script."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import JSON, select, text

from tests.postgres import new_database
from tests.stack import app_config
from webapp import create_app
from webapp.extensions import db
from webapp.models import Feedback, ModelVersion

MOMENT = datetime(2026, 12, 6, 5, 4, 3, 210987)


@pytest.fixture
def app(app_on_each_database):
    return app_on_each_database


def stored(app) -> list[tuple]:
    with app.app_context():
        versions = db.session.execute(text(
            "SELECT version, class_thresholds IS NULL, CAST(class_thresholds AS TEXT), val_acc, created_at "
            "FROM model_versions ORDER BY version")).all()
        feedback = db.session.execute(select(Feedback.correct, Feedback.abstained, Feedback.label,
                                             Feedback.confidence)).all()
        return [(version, bool(is_null), *rest) for version, is_null, *rest in versions] + \
            [tuple(row) for row in feedback]


def test_values_come_back_with_their_types(app, tmp_path, tmp_path_factory, request):
    with app.app_context():
        for version, thresholds in ((1, None), (2, JSON.NULL), (3, {"玫瑰": 0.1 + 0.2})):
            db.session.add(ModelVersion(version=version, backbone="resnet18", image_size=32, class_names=["玫瑰"],
                                        val_acc=1 / 3, bundle_bytes=1, class_thresholds=thresholds,
                                        created_at=MOMENT))
        db.session.add(Feedback(prediction_id="p", version=1, arm="production", predicted_class="玫瑰",
                                confidence=0.1 + 0.7, correct=False, abstained=True, label=None))
        db.session.commit()
    before = stored(app)
    assert before[0][1] is True and before[1][1] is False  # SQL NULL, then JSON's null
    archive = tmp_path_factory.mktemp("archives") / "values.tar"
    assert app.test_cli_runner().invoke(args=["backup", "create", str(archive)]).exit_code == 0

    uri = f"sqlite:///{tmp_path / 'restored' / 'studio.sqlite3'}"
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        uri = new_database(request.getfixturevalue("postgres_server"))
    target = create_app(app_config(tmp_path / "restored", SQLALCHEMY_DATABASE_URI=uri))
    restored = target.test_cli_runner().invoke(args=["backup", "restore", str(archive)])
    assert restored.exit_code == 0, restored.output
    assert stored(target) == before
