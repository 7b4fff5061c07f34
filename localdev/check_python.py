"""Exit with one clear line unless this interpreter is the Python that the platform needs."""

import sys

REQUIRED = (3, 11)

if sys.version_info[:2] != REQUIRED:
    found = ".".join(map(str, sys.version_info[:3]))
    sys.exit(
        f"error: ShopStream needs Python {REQUIRED[0]}.{REQUIRED[1]} (as its Astro Runtime image has), "
        f"but {sys.executable} is Python {found}; install python3.11 or run `make PYTHON=/path/to/python3.11 ...`"
    )
