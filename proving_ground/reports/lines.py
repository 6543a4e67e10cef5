"""How big each part of Django/ is: `make lines`.

    python -m proving_ground lines

- the book's stack: what chapter 2 builds (settings, ASGI routing, the worker class,
  Gunicorn's hooks, health probes, the status page, the echo socket), counted in a copy
  made the way the README's "The book's stack alone" says;
- the machinery it runs: Prometheus metrics (metrics/) and the workarounds of libraries'
  internals (compat/) left in that copy;
- the realtime base (realtime/, and the compat modules only it uses);
- the worked example built on it (talk/, accounts/).

Lines are a file's lines, as `wc -l` counts them; code lines leave out blank lines,
comments and docstrings. Tests and migrations are not counted.
"""

from __future__ import annotations

import io
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path

from proving_ground import reports
from proving_ground.stacks import book
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.docker import copy_repository

SKIPPED = {"tests", "migrations", "__pycache__"}
BOOK = ("channels_tutorial", "core", "gunicorn.conf.py", "manage.py")
MACHINERY = ("metrics", "compat")
REALTIME = ("realtime",)
# The sign-in throttle's cache (accounts/), in the project package: the patch takes it out.
EXAMPLE = ("talk", "accounts", "channels_tutorial/caches.py")
# The budget a reader's copy of chapter 2's stack stays within.
BOOK_BUDGET = 1000


@dataclass(frozen=True)
class Part:
    name: str
    paths: tuple[str, ...]
    files: tuple[str, ...]  # relative to Django/
    lines: int
    code_lines: int


def count(name: str, django: Path, paths: tuple[str, ...], only=None) -> Part:
    """The part's Python files under `django` (those in `only`, if given)."""
    files = [f for f in python_files(django, paths) if only is None or f in only]
    texts = [f.read_text() for f in files]
    return Part(
        name,
        paths,
        tuple(str(f.relative_to(django)) for f in files),
        sum(len(text.splitlines()) for text in texts),
        sum(code_lines(text) for text in texts),
    )


def python_files(django: Path, names: tuple[str, ...]) -> list[Path]:
    files = []
    for name in names:
        path = django / name
        found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        found = [f for f in found if f.suffix == ".py" and f.exists()]
        files += [f for f in found if not SKIPPED & set(f.relative_to(django).parts)]
    return files


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    lines: set[int] = set()
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT}
    skipped |= {tokenize.DEDENT, tokenize.ENDMARKER}
    statement_start = True
    for token in tokens:
        if token.type in skipped:
            statement_start = statement_start or token.type == tokenize.NEWLINE
            continue
        # A string that starts a statement is a docstring (or a lone expression).
        docstring = token.type == tokenize.STRING and statement_start
        statement_start = False
        if not docstring:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines)


def parts(root: Path = ROOT) -> list[Part]:
    """The four parts; the book's stack and its machinery counted in a copy stripped the
    way the README says, the compat modules it no longer has counted with realtime's."""
    django = root / "Django"
    with tempfile.TemporaryDirectory(prefix="book-") as tmp:
        copy = copy_repository(Path(tmp))
        book.strip_to_the_book(copy)
        kept = copy / "Django"
        book_part = count("the book's stack", kept, BOOK)
        machinery = count("the machinery it runs", kept, MACHINERY)
    realtime_compat = tuple(
        f"compat/{name}"
        for name in sorted(p.name for p in (django / "compat").glob("*.py"))
        if f"compat/{name}" not in machinery.files
    )
    realtime = count("the realtime base", django, REALTIME + realtime_compat)
    example = count("the worked example", django, EXAMPLE)
    return [book_part, machinery, realtime, example]


def render(counted: list[Part]) -> str:
    rows = [("part", "folders and files", "lines", "code lines")]
    for part in counted:
        names = " ".join(p if p.endswith(".py") else f"{p}/" for p in part.paths)
        rows.append((part.name, names, str(part.lines), str(part.code_lines)))
    out = reports.columns(rows, "llrr")
    book_lines = counted[0].lines
    out.append(
        f"\nThe book's stack: {book_lines} lines, "
        f"{'within' if book_lines < BOOK_BUDGET else 'OVER'} its budget of {BOOK_BUDGET}."
    )
    return "\n".join(out)


def main() -> int:
    reports.parser(__doc__).parse_args()
    counted = parts()
    print(render(counted))
    return 0 if counted[0].lines < BOOK_BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
