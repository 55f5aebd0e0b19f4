"""The docs a newcomer reads: a README of at most 150 lines with exactly two set-up commands, and
every relative link in README.md, CONTRIBUTING.md and docs/ pointing at a file and heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _outside_code(text: str) -> str:
    """The text without fenced code blocks (a link-looking string in code is not a link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _outside_code(path.read_text(encoding="utf-8"))
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def test_readme_is_short_with_two_set_up_commands() -> None:
    """README.md has at most 150 lines and exactly two commands under Set-up, the tests' with its time."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", setup, flags=re.S | re.M)
    assert len(blocks) == 2 and all(len(block.strip().splitlines()) == 1 for block in blocks), blocks
    assert "pytest" in blocks[1] and "minutes" in setup
    assert "crontab --install" in text and "crontab -\n" not in text and "| crontab -" not in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    """Each relative link names an existing file, and its #anchor an existing heading there."""
    for target in LINK.findall(_outside_code(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here (no network in tests)
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        assert dest.exists(), f"{page.name}: {target} -> {dest} does not exist"
        if anchor:
            assert anchor in anchors(dest), f"{page.name}: {target}: no heading #{anchor} in {dest.name}"


def test_slug_follows_github() -> None:
    """The anchor rule matches GitHub's for the headings used here."""
    assert slug(" Change hooks (`on_change`)") == "change-hooks-on_change"
    assert slug("Reading `status`") == "reading-status"
    assert slug("No fallback patch by default") == "no-fallback-patch-by-default"
