"""``keepwell care ...``: the SMS sandbox and automatic-care housekeeping."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer, imports: typer.Typer) -> None:
    care = typer.Typer(
        help="Care service: SMS sandbox, automatic-care rules.", no_args_is_help=True
    )
    app.add_typer(care, name="care")

    @care.command("sandbox")
    def sandbox(
        port: Annotated[
            int | None, typer.Option(help="Defaults to CARE_SANDBOX_PORT (8009).")
        ] = None,
        receipt_url: Annotated[
            str | None,
            typer.Option(
                help="Push delivery receipts here, e.g. the care service's "
                "http://127.0.0.1:8003/sms/receipts/sandbox"
            ),
        ] = None,
        uplink_url: Annotated[
            str | None,
            typer.Option(
                help="Push customers' replies (POST /replies) here, e.g. the care service's "
                "http://127.0.0.1:8003/sms/uplinks/sandbox"
            ),
        ] = None,
    ) -> None:
        """Run the sandbox SMS provider (a stand-in operator) over HTTP."""
        import uvicorn

        from services.care.config import get_care_settings
        from services.care.sandbox.app import Control, create_app
        from services.kit.config import get_settings

        care = get_care_settings()
        initial = Control(
            receipt_url=receipt_url,
            receipt_token=care.receipt_token.get_secret_value(),
            uplink_url=uplink_url,
            uplink_token=care.uplink_secret.get_secret_value(),
        )
        uvicorn.run(
            create_app(initial),
            host=get_settings().host,
            port=port or care.sandbox_port,
            log_config=None,
            timeout_graceful_shutdown=5,
        )

    @care.command("rebuild-customers")
    def rebuild_customers(
        profile_url: Annotated[
            str | None, typer.Option(help="Defaults to KEEPWELL_PROFILE_URL.")
        ] = None,
    ) -> None:
        """Reload the care service's customer copy from the profile service."""
        import asyncio
        import json

        from services.care.ops import rebuild_read_model
        from services.kit.config import get_settings

        counts = asyncio.run(rebuild_read_model(get_settings(), profile_url))
        typer.echo(json.dumps(counts))

    @care.command("install-rules")
    def install_rules() -> None:
        """Add the default automatic-care rules (only when there are none yet)."""
        import asyncio

        from services.care.automatic import install_default_rules
        from services.kit.app import Resources
        from services.kit.config import get_settings

        async def go() -> int:
            res = Resources.open("care", get_settings())
            try:
                async with res.session() as session:
                    return await install_default_rules(session)
            finally:
                await res.close()

        typer.echo(f"rules added: {asyncio.run(go())}")
