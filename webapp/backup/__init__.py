"""Backup and restore of a whole install: one archive with a consistent copy of the database, exactly the
files that copy references, and a manifest of every file's digest (webapp.backup.archive). Made from the
command line (webapp.backup.cli) or on a schedule by a worker (webapp.backup.schedule)."""
