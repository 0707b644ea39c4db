"""Copy front-end files from node_modules (installed by `npm ci`) into static/vendor.

Nothing is hand-copied into the repository: package.json pins the packages,
this list says which of their files the panel serves.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
VENDOR_FILES = {
    "htmx.org/dist/htmx.min.js": "htmx.min.js",
    # The browser console (issue 10, templates/vps/console.html).
    "@xterm/xterm/lib/xterm.js": "xterm.js",
    "@xterm/xterm/css/xterm.css": "xterm.css",
    "@xterm/addon-fit/lib/addon-fit.js": "addon-fit.js",
    # The VPS page's usage graphs.
    "uplot/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
    "uplot/dist/uPlot.min.css": "uPlot.min.css",
}


def main() -> int:
    target = TOP / "static" / "vendor"
    target.mkdir(parents=True, exist_ok=True)
    for source, name in VENDOR_FILES.items():
        path = TOP / "node_modules" / source
        if not path.is_file():
            print(f"vendor_static: {path} is missing; run `npm ci` first", file=sys.stderr)
            return 1
        shutil.copyfile(path, target / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
