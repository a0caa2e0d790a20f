"""`flask --app webapp.wsgi users ...`: manage accounts from the server's shell."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from engine.errors import StudioError
from webapp.accounts import services
from webapp.accounts.policy import ROLES

users = AppGroup("users", help="Create and list the people who can sign in.")


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="admin", show_default=True)
@click.password_option(help="Asked for when not given (with confirmation).")
def create(username: str, role: str, password: str) -> None:
    """Create a user (the first admin, typically)."""
    try:
        user = services.create_user(username, password, role)
    except StudioError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created {user.role} '{user.username}'.")


@users.command("list")
def list_users() -> None:
    """List users and their roles."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import User

    for user in db.session.scalars(select(User).order_by(User.username)):
        click.echo(f"{user.username}\t{user.role}")


@users.command("set-password")
@click.argument("username")
@click.password_option()
def set_password(username: str, password: str) -> None:
    """Give a user a new password (ends their sessions)."""
    user = services.find_user(username)
    if user is None:
        raise click.ClickException(f"There is no user '{username}'.")
    try:
        services.update_user(user, password=password)
    except StudioError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"New password set for '{username}'.")


def init_app(app: Flask) -> None:
    app.cli.add_command(users)
