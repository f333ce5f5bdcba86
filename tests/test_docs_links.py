"""Every relative link in the README, docs/, the checkpoints' READMEs and the results notes points at a file that
exists, and every #anchor at a heading of its target: the results moved between the README and docs/ more than
once, and a broken link there is what a new user meets first."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "checkpoints").glob("*/README.md")),
        *sorted((ROOT / "benchmarks" / "results").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a markdown heading: lower case, inline code marks and punctuation dropped (letters,
    digits, spaces, hyphens and underscores kept), spaces turned into hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a markdown file, code fences and their contents left out."""
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            yield number, line


@functools.cache
def anchors(path: Path) -> set[str]:
    """The heading ids of a markdown file (repeated headings get GitHub's -1, -2 suffixes)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in prose_lines(path):
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match is None:
            continue
        base = github_anchor(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every markdown link and image outside code fences."""
    out = []
    for number, line in prose_lines(path):
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        for match in LINK.finditer(line):
            out.append((number, match.group(1) or match.group(2)))
    return out


def test_github_anchor_matches_githubs_rule() -> None:
    assert github_anchor("Choosing the cpu recipe") == "choosing-the-cpu-recipe"
    assert (github_anchor("SRPO vs GRPO from a sparse-success start (`benchmarks/learning_efficiency.py`, issue #17)")
            == "srpo-vs-grpo-from-a-sparse-success-start-benchmarkslearning_efficiencypy-issue-17")
    assert github_anchor("Robustness: LIBERO-Plus and LIBERO-PRO") == "robustness-libero-plus-and-libero-pro"


def test_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("# Title\n\n[ok](#title) [bad](#nowhere) ![img](missing.png)\n```\n[not a link](x.md)\n```\n")
    assert links(doc) == [(3, "#title"), (3, "#nowhere"), (3, "missing.png")]
    assert anchors(doc) == {"title"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for number, target in links(doc):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{doc.name}:{number}: {target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{doc.name}:{number}: {target} (no heading with that anchor in {dest.name})")
    assert not broken, "broken links:\n" + "\n".join(broken)
