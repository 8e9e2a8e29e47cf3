"""Fenced code blocks of the project's Markdown, with the marker before each.

A block's marker is an HTML comment on the line directly before its opening
fence: `<!-- docs-check: partial -->` (a fragment: not loaded) or
`<!-- docs-check: invalid -->` (must be refused). Fences may be indented (in
lists); a block ends at a fence of the same character and indentation.
"""

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*docs-check:\s*(?P<marker>[a-z-]+)\s*-->\s*$")
MARKERS = ("partial", "invalid")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marker: str | None

    @property
    def place(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def documentation_files() -> list[Path]:
    """The README and every page under docs/."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("**/*.md"))]


def code_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        previous = lines[index - 1] if index > 0 else ""
        marked = MARKER.match(previous)
        if marked and marked["marker"] not in MARKERS:
            raise ValueError(f"{path}:{index}: unknown docs-check marker {marked['marker']!r}")
        body, end = [], index + 1
        while end < len(lines) and lines[end].strip() != fence:
            line = lines[end]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            end += 1
        blocks.append(
            Block(
                path=path,
                line=index + 1,
                language=opening["info"].strip().split(" ")[0].lower(),
                text="\n".join(body) + "\n",
                marker=marked["marker"] if marked else None,
            )
        )
        index = end + 1
    return blocks
