"""`flask --app webapp.wsgi users ...`: manage accounts from the server's shell, in the server's language
(its LANG, or DEFAULT_LANGUAGE)."""
from __future__ import annotations


import click
from flask import Flask
from flask_babel import gettext
from sqlalchemy import select

from engine.errors import StudioError
from webapp.accounts import first_run, services
from webapp.accounts.policy import ROLES
from webapp.errors import translated
from webapp.extensions import db
from webapp.i18n import ROLE_LABELS, ServerLanguageGroup
from webapp.models import User
from webapp.storage import data_dir


users = ServerLanguageGroup("users", help="Create and list the people who can sign in.")


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="admin", show_default=True)
@click.password_option(help="Asked for when not given (with confirmation).")
def create(username: str, role: str, password: str) -> None:
    """Create a user (the first admin, typically)."""
    try:
        user = services.create_user(username, password, role)
    except StudioError as exc:
        raise click.ClickException(translated(exc)) from None
    first_run.drop_token(data_dir())  # somebody can sign in now
    click.echo(gettext("Created %(role)s '%(name)s'.", role=str(ROLE_LABELS.get(user.role, user.role)),
                       name=user.username))


@users.command("list")
def list_users() -> None:
    """List users and their roles."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        click.echo(f"{user.username}\t{user.role}")


@users.command("set-password")
@click.argument("username")
@click.password_option()
def set_password(username: str, password: str) -> None:
    """Give a user a new password (ends their sessions)."""
    user = services.find_user(username)
    if user is None:
        raise click.ClickException(gettext("There is no user '%(name)s'.", name=username))
    try:
        services.update_user(user, password=password)
    except StudioError as exc:
        raise click.ClickException(translated(exc)) from None
    click.echo(gettext("New password set for '%(name)s'.", name=username))


def init_app(app: Flask) -> None:
    app.cli.add_command(users)
