"""``keepwell calendar import``: a year's official schedule from a file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from keepwell.cli import app
from services.kit.app import Resources


async def test_calendar_import_loads_an_official_year(
    world: Resources, engine: AsyncEngine, tmp_path: Path
) -> None:
    schedule = tmp_path / "2027.csv"
    schedule.write_text(
        "date,kind,name\n2027-02-05,off,春节\n2027-02-06,off,春节\n2027-02-20,work,调休上班\n",
        encoding="utf-8",
    )
    result = await __import__("asyncio").to_thread(
        CliRunner().invoke, app, ["calendar", "import", str(schedule), "--year", "2027"]
    )
    assert result.exit_code == 0, result.output
    assert "2 days off, 1 working weekend days" in result.output
    async with engine.connect() as conn:
        from sqlalchemy import text

        year = (
            await conn.execute(
                text("SELECT provisional, source FROM complaint.calendar_year WHERE year = 2027")
            )
        ).one()
        days = dict(
            (await conn.execute(
                text(
                    "SELECT day, working FROM complaint.calendar_day "
                    "WHERE day BETWEEN '2027-01-01' AND '2027-12-31'"
                )
            )).all()
        )  # fmt: skip
    assert not year.provisional and year.source == "official:2027.csv"
    assert days == {date(2027, 2, 5): False, date(2027, 2, 6): False, date(2027, 2, 20): True}


def test_a_bad_line_is_refused(tmp_path: Path) -> None:
    schedule = tmp_path / "bad.csv"
    schedule.write_text("2027-02-05,holiday\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["calendar", "import", str(schedule), "--year", "2027"])
    assert result.exit_code != 0 and "line 1" in result.output
