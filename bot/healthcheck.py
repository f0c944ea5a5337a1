"""`python -m bot.healthcheck [PORT]`: exit 0 when this host's `GET /livez` answers 200, else 1.

The container's HEALTHCHECK: the slim image has no curl, and the port comes from `$PORT` (default 3000).
`/livez`, not `/healthz`: a Hub outage or a spent rate budget must not mark the container unhealthy (an
orchestrator restarts unhealthy containers, which cures neither).
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    port = (args[0] if args else "") or os.environ.get("PORT") or "3000"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (OSError, ValueError) as err:
        print(f"space-ops unhealthy on port {port}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
