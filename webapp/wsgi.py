"""The WSGI entry point of the production server: the app, created in each web process after the fork,
with the released versions loaded in the background so the first predictions do not wait for them."""
from __future__ import annotations

from webapp import create_app
from webapp.predict.serving import preload_released

app = create_app()
preload_released(app)
