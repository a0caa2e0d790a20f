"""The WSGI entry point of the production server: the app, created in each web process after the fork,
with the released versions loaded in the background so the first predictions do not wait for them, and
while nobody can sign in, the one-time setup token made and its link logged (webapp.accounts.first_run)."""
from __future__ import annotations

from webapp import create_app
from webapp.accounts.first_run import prepare_first_run
from webapp.predict.serving import preload_released

app = create_app()
prepare_first_run(app)
preload_released(app)
