"""compensation audit lets an erasure or the text retention blank a reason

Revision ID: 6a8c0e2f4b71
Revises: 9c3e5f1a7b24
Created: 2026-12-02 13:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "6a8c0e2f4b71"
down_revision: str | None = "9c3e5f1a7b24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION complaint.refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'complaint.compensation_audit is append-only';
END $$
"""

# With keepwell.erasure on in its transaction (services/kit/erasure.py), an erasure or the
# text retention may blank a row's reason; who did what, when and for how much stays.
ERASABLE = """
CREATE OR REPLACE FUNCTION complaint.refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('keepwell.erasure', true) = 'on'
     AND NEW.reason = ''
     AND ROW(NEW.id, NEW.compensation_id, NEW.action, NEW."by", NEW.role, NEW.at, NEW.details)
         IS NOT DISTINCT FROM
         ROW(OLD.id, OLD.compensation_id, OLD.action, OLD."by", OLD.role, OLD.at, OLD.details)
  THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'complaint.compensation_audit is append-only';
END $$
"""


def upgrade() -> None:
    op.execute(ERASABLE)


def downgrade() -> None:
    op.execute(APPEND_ONLY)
