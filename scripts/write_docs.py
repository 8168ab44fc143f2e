"""Write the generated parts of the documentation: the data map in docs/PRIVACY.md and
docs/PERSONVERN.md (between the data-map markers). Run by `make docs`; a test checks them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from app.services import datamap

ROOT = Path(__file__).resolve().parent.parent
MARKED = re.compile(r"(<!-- data-map:start -->\n).*?(<!-- data-map:end -->)", re.S)


def main() -> int:
    for name in ("PRIVACY.md", "PERSONVERN.md"):
        path = ROOT / "docs" / name
        text = path.read_text()
        if not MARKED.search(text):
            print(f"docs/{name}: no data-map markers", file=sys.stderr)
            return 1
        path.write_text(MARKED.sub(lambda m: m.group(1) + datamap.tables(3) + m.group(2), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
