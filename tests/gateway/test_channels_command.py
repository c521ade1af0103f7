"""`keepwell gateway channels`: an admin adds a team's robots on the command line (a
DingTalk secret from the environment, never an argument), lists them with their keys
masked, sends a test message the stand-in robot receives, and removes them."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest

from services.kit.testing import Infra, serve
from tests.gateway.robots import Robots

SECRET = "SECcommand-line-test-secret-0123456789abcdef"


@pytest.fixture
async def robots() -> AsyncIterator[tuple[Robots, str]]:
    stand_in = Robots(secrets={"dt-token-1": SECRET})
    async with serve(stand_in.app()) as url:
        yield stand_in, url


async def channels(infra: Infra, *args: str, answers: str = "", **env: str) -> tuple[int, str, str]:
    """The command in a process of its own, ``answers`` on its stdin; awaited, so the
    stand-in keeps answering."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "keepwell",
        "gateway",
        "channels",
        *args,
        env={**os.environ, "DATABASE_URL": infra.database_url, "REDIS_URL": infra.redis_url, **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(answers.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_channels_added_listed_tested_and_removed(
    infra: Infra, robots: tuple[Robots, str]
) -> None:
    stand_in, url = robots
    code, out, err = await channels(
        infra,
        "add",
        *("--team", "T001", "--kind", "dingtalk", "--name", "一组值班群"),
        *("--url", f"{url}/robot/send?access_token=dt-token-1", "--secret-env", "DT_SECRET"),
        DT_SECRET=SECRET,
    )
    assert code == 0, err
    channel_id = out.split()[0]
    assert "signed" in out and "dt-token-1" not in out and SECRET not in out
    code, out, err = await channels(
        infra,
        "add",
        *("--team", "T002", "--kind", "wecom", "--name", "二组"),
        *("--url", f"{url}/cgi-bin/webhook/send?key=wk-key-0002"),
    )
    assert code == 0, err
    # Both asked for: the URL (its token) and the secret, neither on the command line.
    code, out, err = await channels(
        infra,
        "add",
        *("--team", "T003", "--kind", "dingtalk", "--name", "三组"),
        answers=f"{url}/robot/send?access_token=dt-token-3\n{SECRET}\n",
    )
    assert code == 0, err
    assert "signed" in out and "dt-token-3" not in out + err and SECRET not in out + err

    code, out, _ = await channels(infra, "list")
    assert code == 0 and len(out.strip().splitlines()) == 3
    assert "dt-t****" in out and "wk-k****" in out
    assert "dt-token-1" not in out and "wk-key-0002" not in out and SECRET not in out

    code, out, err = await channels(infra, "test", channel_id)
    assert code == 0, err
    [received] = stand_in.received
    assert received.robot == "dingtalk:dt-token-1"
    assert received.body["markdown"]["title"] == "Keepwell 测试消息"

    stand_in.secrets["dt-token-1"] = "SECchanged-in-dingtalk"
    code, _, err = await channels(infra, "test", channel_id)
    assert code == 1 and "310000" in err and "dt-token-1" not in err

    code, out, _ = await channels(infra, "remove", channel_id)
    assert code == 0 and "removed" in out
    code, out, _ = await channels(infra, "list", "--team", "T001")
    assert code == 0 and out.strip() == ""


async def test_bad_input_is_refused_in_one_line(infra: Infra) -> None:
    code, _, err = await channels(
        infra,
        "add",
        *("--team", "T001", "--kind", "wecom", "--name", "x", "--url", "ftp://robot"),
    )
    assert code == 2 and err.strip().startswith("error: url：")
    code, _, err = await channels(
        infra,
        "add",
        *("--team", "T001", "--kind", "dingtalk", "--name", "x"),
        *("--url", "https://oapi.dingtalk.com/robot/send?access_token=t", "--secret-env", "NOPE"),
    )
    assert code == 2 and "NOPE" in err
    code, _, err = await channels(infra, "remove", "999")
    assert code == 2 and "999" in err
