"""texts for people in one stored form: a template with its parameters, or words that are no template

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 20:00:00

Each text is kept as {"template", "params"} (shown in the reader's language) or {"text"} (shown as it is),
in a JSON column: jobs.error, the reasons in jobs.suggested, datasets.error, each of datasets.warnings, the
reason of each of datasets.rejected, evaluations.error. Before, the English text was kept with its template
beside it in `text_templates` (rejected files: "reason_template" and "reason_params" in the item); a text
with a template keeps the template, one without keeps its English words.

SQLite changes a column's type only by rebuilding the table, which runs with foreign keys off (dropping a
parent table with them on deletes or orphans its children's rows through ON DELETE), in one transaction,
and checks every foreign key before it commits (as 0015 does).
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

TABLES = {'datasets': ('error', 'warnings', 'rejected'), 'jobs': ('error', 'suggested'), 'evaluations': ('error',)}


def upgrade():
    _change(_one_form, sa.Text(), sa.JSON(none_as_null=True), 'to_json(error)')


def downgrade():
    _change(_english_and_templates, sa.JSON(none_as_null=True), sa.Text(), 'error #>> \'{}\'')


def _change(convert, old_type, new_type, postgresql_using: str) -> None:
    """Read every row's texts, change the type of `error` (the rest are JSON already), write them back."""
    if op.get_bind().dialect.name != 'sqlite':
        _rewrite(convert, old_type, new_type, postgresql_using)
        return
    context = op.get_context()
    with context.autocommit_block():
        bind = op.get_bind()
        bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
        try:
            bind.exec_driver_sql('BEGIN IMMEDIATE')
            try:
                broken_before = set(bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall())
                _rewrite(convert, old_type, new_type, postgresql_using)
                broken = set(bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall()) - broken_before
                if broken:
                    raise RuntimeError(f'the rebuild would break these links: {sorted(broken)[:5]}')
            except BaseException:
                bind.exec_driver_sql('ROLLBACK')
                raise
            bind.exec_driver_sql('COMMIT')
        finally:
            bind.exec_driver_sql('PRAGMA foreign_keys=ON')


def _rewrite(convert, old_type, new_type, postgresql_using: str) -> None:
    bind, upgrading = op.get_bind(), isinstance(old_type, sa.Text)
    for name, columns in TABLES.items():
        old = _table(name, columns, old_type, with_templates=upgrading)
        rows = [dict(row) for row in bind.execute(sa.select(old)).mappings()]
        with op.batch_alter_table(name, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            batch_op.alter_column('error', type_=new_type, existing_type=old_type, existing_nullable=True,
                                  postgresql_using=postgresql_using)
            if upgrading:
                batch_op.drop_column('text_templates')
            else:
                batch_op.add_column(sa.Column('text_templates', sa.JSON(), nullable=True))
        new = _table(name, columns, new_type, with_templates=not upgrading)
        for row in rows:
            bind.execute(new.update().where(new.c.id == row['id']).values(**convert(row)))


def _table(name: str, columns: tuple, error_type, with_templates: bool) -> sa.Table:
    extra = [sa.Column('text_templates', sa.JSON(none_as_null=True))] if with_templates else []
    return sa.table(name, sa.column('id', sa.Integer()), *[
        sa.column(column, error_type if column == 'error' else sa.JSON(none_as_null=True)) for column in columns],
        *extra)


# Upgrade: the English text and its templates beside it, to one stored form per text.

def _form(english, template):
    """The one form of an English text and the template kept beside it (if any)."""
    if english is None:
        return None
    if isinstance(template, dict) and isinstance(template.get('template'), str):
        return {'template': template['template'], 'params': template.get('params') or {}}
    return {'text': str(english)}


def _one_form(row: dict) -> dict:
    templates = row['text_templates'] if isinstance(row['text_templates'], dict) else {}
    values = {'error': _form(row['error'], templates.get('error'))}
    if 'suggested' in row and isinstance(row['suggested'], dict):
        reasons = templates.get('suggested') or {}
        values['suggested'] = {option: _form(reason, reasons.get(option))
                               for option, reason in row['suggested'].items()}
    if 'warnings' in row:
        warnings, forms = row['warnings'] or [], templates.get('warnings') or []
        if len(forms) != len(warnings):  # not the templates of these texts
            forms = [None] * len(warnings)
        values['warnings'] = [_form(warning, form) for warning, form in zip(warnings, forms)]
    if 'rejected' in row:
        values['rejected'] = [{'path': item.get('path'), 'reason': _form(item.get('reason'), {
            'template': item.get('reason_template'), 'params': item.get('reason_params')})}
            for item in row['rejected'] or [] if isinstance(item, dict)]
    return values


# Downgrade: each stored form back to its English text, its template beside it.

def _english(form):
    """The English words of a stored form (parameters that are forms themselves filled in English too)."""
    if not isinstance(form, dict):
        return form
    if not isinstance(form.get('template'), str):
        return form.get('text')
    params = {name: _english(value) if isinstance(value, dict) else value
              for name, value in (form.get('params') or {}).items()}
    try:
        return form['template'] % params if params else form['template']
    except (KeyError, ValueError, TypeError):
        return form['template']


def _template(form):
    return form if isinstance(form, dict) and isinstance(form.get('template'), str) else None


def _english_and_templates(row: dict) -> dict:
    values, templates = {'error': _english(row['error'])}, {}
    if _template(row['error']):
        templates['error'] = row['error']
    if 'suggested' in row and isinstance(row['suggested'], dict):
        values['suggested'] = {option: _english(reason) for option, reason in row['suggested'].items()}
        templates['suggested'] = {option: reason for option, reason in row['suggested'].items() if _template(reason)}
    if 'warnings' in row:
        values['warnings'] = [_english(warning) for warning in row['warnings'] or []]
        if any(_template(warning) for warning in row['warnings'] or []):  # 0011 reads {"text"} as no template
            templates['warnings'] = list(row['warnings'])
    if 'rejected' in row:
        values['rejected'] = [_rejected_item(item) for item in row['rejected'] or [] if isinstance(item, dict)]
    values['text_templates'] = {key: value for key, value in templates.items() if value} or None
    return values


def _rejected_item(item: dict) -> dict:
    reason = item.get('reason')
    flat = {'path': item.get('path'), 'reason': _english(reason)}
    if _template(reason):
        flat.update(reason_template=reason['template'], reason_params=reason.get('params') or {})
    return flat
