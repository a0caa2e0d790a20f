"""`flask --app webapp.wsgi backup create|verify|restore FILE`: back up the install while it runs, check an
archive, restore one into an empty install; in the server's language, with an exit code that says the result."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask_babel import gettext

from engine.errors import StudioError
from webapp.i18n import ServerLanguageGroup
from webapp.backup import services
from webapp.errors import translated
from webapp.messages import text

backup = ServerLanguageGroup("backup", help="Back up the studio, check a backup, restore one.")


@backup.command("create")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--with-keys", is_flag=True, help="Also keep the install's keys (session and checkpoint keys).")
def create(file: Path, with_keys: bool) -> None:
    """Write one archive of the database and the files it references."""
    try:
        manifest = services.create_backup(file, with_keys)
    except StudioError as exc:
        raise click.ClickException(translated(exc)) from None
    for name in manifest.missing:
        click.echo(gettext("Not in the backup: %(path)s was removed while the backup was taken (deleted or purged).",
                           path=name), err=True)
    megabytes = format(sum(entry.size for entry in manifest.entries) / 1e6, ".1f")
    click.echo(gettext("Backed up %(count)s files (%(mb)s MB) at schema revision %(revision)s to %(file)s.",
                       count=len(manifest.entries), mb=megabytes, revision=manifest.about.schema_revision,
                       file=str(file)))


@backup.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify(file: Path) -> None:
    """Check an archive without restoring it; exit code 1 when it is damaged."""
    try:
        checked = services.verify_backup(file)
    except StudioError as exc:
        raise click.ClickException(translated(exc)) from None
    if checked.problems:
        raise click.ClickException(" ".join(text(problem) for problem in checked.problems))
    about = checked.manifest.about
    click.echo(gettext("%(file)s is whole: %(count)s files, schema revision %(revision)s, taken %(when)s by studio "
                       "%(version)s.", file=str(file), count=len(checked.manifest.entries),
                       revision=about.schema_revision, when=about.created_at, version=about.studio_version))


@backup.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore(file: Path) -> None:
    """Restore an archive into an empty DATA_DIR and an empty database."""
    try:
        manifest = services.restore_backup(file)
    except StudioError as exc:
        raise click.ClickException(translated(exc)) from None
    click.echo(gettext("Restored %(count)s files and the database of %(when)s (schema revision %(revision)s, now "
                       "%(head)s).", count=len(manifest.entries), when=manifest.about.created_at,
                       revision=manifest.about.schema_revision, head=services.known_revisions()[-1]))


def init_app(app: Flask) -> None:
    app.cli.add_command(backup)
