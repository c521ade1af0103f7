"""The documents people read stay true to the code."""

from __future__ import annotations

from pathlib import Path

from services.kit.events.catalogue import catalogue_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_architecture_lists_every_event_with_producer_consumers_and_payload() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    begin, end = "<!-- events:begin -->", "<!-- events:end -->"
    documented = text[text.index(begin) + len(begin) : text.index(end)].strip()
    assert documented == catalogue_markdown(), (
        "ARCHITECTURE.md's event catalogue is out of date: paste `keepwell events catalogue`"
    )


def test_readme_shows_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
