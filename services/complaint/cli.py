"""Commands of the complaint service: ``keepwell calendar import`` (a year's official
schedule of days off and adjusted working days) and ``keepwell complaint sweep``. Heavy
imports happen inside the commands."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

calendar_app = typer.Typer(help="Business calendars of the SLAs.", no_args_is_help=True)
complaint_app = typer.Typer(help="Complaint service operations.", no_args_is_help=True)


def register(app: typer.Typer, imports: typer.Typer) -> None:
    app.add_typer(calendar_app, name="calendar")
    app.add_typer(complaint_app, name="complaint")


def parse_schedule(path: Path, year: int) -> dict[str, Any]:
    """JSON (``{"days_off": [...], "workdays": [...], "names": {...}}``) or CSV lines
    ``date,off|work[,name]`` (a header line is allowed)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data: dict[str, Any] = json.loads(text)
        return {
            "days_off": data.get("days_off", []),
            "workdays": data.get("workdays", []),
            "names": data.get("names", {}),
            "source": data.get("source", f"official:{path.name}"),
        }
    days_off: list[str] = []
    workdays: list[str] = []
    names: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = [p.strip() for p in line.split(",")]
        if not parts[0] or parts[0].lower() == "date":
            continue
        if len(parts) < 2 or parts[1] not in ("off", "work"):
            raise typer.BadParameter(f"line {number}: expected date,off|work[,name]")
        (days_off if parts[1] == "off" else workdays).append(parts[0])
        if len(parts) > 2 and parts[2]:
            names[parts[0]] = parts[2]
    return {
        "days_off": days_off,
        "workdays": workdays,
        "names": names,
        "source": f"official:{path.name}",
    }


@calendar_app.command("import")
def import_calendar(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    year: Annotated[int, typer.Option(help="The year the schedule is for.")],
    calendar_id: Annotated[int | None, typer.Option(help="Defaults to the first calendar.")] = None,
) -> None:
    """Load a year's official schedule (State Council notice): days off and weekend working
    days. Running SLA clocks on that calendar keep the time used and get new due times."""
    from pydantic import ValidationError

    from services.complaint.schemas import YearImport
    from services.kit.errors import DomainError

    try:
        data = YearImport.model_validate(parse_schedule(file, year))
    except (ValidationError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from exc
    try:
        rebased = asyncio.run(_import(data, year, calendar_id))
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"{year}: {len(data.days_off)} days off, {len(data.workdays)} working weekend days; "
        f"clocks rebased: {rebased}"
    )


async def _import(data: Any, year: int, calendar_id: int | None) -> int:
    from services.complaint import repository, service
    from services.kit.app import Resources
    from services.kit.auth import Principal, Role
    from services.kit.config import get_settings

    res = Resources.open("complaint", get_settings())
    try:
        async with res.session() as session:
            if calendar_id is None:
                rows = await repository.calendar_rows(session)
                if not rows:
                    await service.install_defaults(session)
                    rows = await repository.calendar_rows(session)
                calendar_id = rows[0].id
            assert calendar_id is not None
            operator = Principal(user_id="cli", role=Role.admin)
            return await service.import_year(session, operator, calendar_id, year, data)
    finally:
        await res.close()


@complaint_app.command("sweep")
def sweep() -> None:
    """Run the SLA sweep now (the worker does it every minute; safe to repeat)."""
    from services.complaint.jobs import sla_sweep
    from services.kit.app import Resources
    from services.kit.config import get_settings

    async def go() -> dict[str, Any]:
        res = Resources.open("complaint", get_settings())
        try:
            return await sla_sweep({"resources": res})
        finally:
            await res.close()

    typer.echo(json.dumps(asyncio.run(go())))
