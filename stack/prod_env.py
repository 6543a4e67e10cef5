"""Write the production env files from their committed *.prod.example files, with a fresh
random value wherever the example says `generate-me`. Existing files are never touched.

    make prod-env
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from .compose import ROOT

EXAMPLES = [
    "Django/.env.django.prod.example",
    "MySQL/.env.mysql.prod.example",
    "Redis/.redis.env.prod.example",
]
PLACEHOLDER = "generate-me"


def write_prod_env(root: Path = ROOT) -> list[Path]:
    written = []
    for example in EXAMPLES:
        source = root / example
        target = source.with_suffix("")  # drop ".example"
        if target.exists():
            print(f"kept {target.relative_to(root)} (exists)")
            continue
        lines = [
            line.replace(PLACEHOLDER, secrets.token_urlsafe(48))
            if line.endswith(PLACEHOLDER)
            else line
            for line in source.read_text().splitlines()
        ]
        target.write_text("\n".join(lines) + "\n")
        target.chmod(0o600)
        written.append(target)
        print(f"wrote {target.relative_to(root)}")
    return written


if __name__ == "__main__":
    write_prod_env(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
