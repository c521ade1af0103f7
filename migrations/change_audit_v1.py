"""Version 1 of the change audit every service keeps in its own schema
(``<schema>.change_audit``, services/kit/audit.py), shared by each service's migration that
introduced it: the table, its indexes, and the trigger that keeps it append-only.

Frozen: a later change is a new revision in each service (and, if shared, a
``change_audit_v2`` here), never an edit of this file.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# With keepwell.erasure on in its transaction (services/kit/erasure.py), an erasure may
# replace the number a row's path parameters hold by the customer's stand-in; who changed
# what, when and how it ended stays as it was. Nothing else may change or remove a row.
_REFUSE = """
CREATE FUNCTION {schema}.refuse_change_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('keepwell.erasure', true) = 'on'
     AND ROW(NEW.id, NEW.at, NEW.request_id, NEW.user_id, NEW.role, NEW.team_id, NEW.caller,
             NEW.method, NEW.route, NEW.status)
         IS NOT DISTINCT FROM
         ROW(OLD.id, OLD.at, OLD.request_id, OLD.user_id, OLD.role, OLD.team_id, OLD.caller,
             OLD.method, OLD.route, OLD.status)
     AND cardinality(NEW.resource_ids) = cardinality(OLD.resource_ids) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '{schema}.change_audit is append-only';
END $$
"""


def create(schema: str) -> None:
    op.create_table(
        "change_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("caller", sa.String(length=16), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("resource_ids", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_audit")),
        schema=schema,
    )
    # By time (the period filters), by user newest first, by any path parameter (@>).
    op.create_index("ix_change_audit_at", "change_audit", ["at"], schema=schema)
    op.create_index("ix_change_audit_user_id_id", "change_audit", ["user_id", "id"], schema=schema)
    op.create_index(
        "ix_change_audit_resource_ids",
        "change_audit",
        ["resource_ids"],
        schema=schema,
        postgresql_using="gin",
    )
    op.execute(_REFUSE.format(schema=schema))
    op.execute(
        f"CREATE TRIGGER change_audit_append_only BEFORE UPDATE OR DELETE ON "
        f"{schema}.change_audit FOR EACH ROW EXECUTE FUNCTION "
        f"{schema}.refuse_change_audit_change()"
    )


def drop(schema: str) -> None:
    op.execute(f"DROP TRIGGER change_audit_append_only ON {schema}.change_audit")
    op.execute(f"DROP FUNCTION {schema}.refuse_change_audit_change()")
    op.drop_index("ix_change_audit_resource_ids", table_name="change_audit", schema=schema)
    op.drop_index("ix_change_audit_user_id_id", table_name="change_audit", schema=schema)
    op.drop_index("ix_change_audit_at", table_name="change_audit", schema=schema)
    op.drop_table("change_audit", schema=schema)
