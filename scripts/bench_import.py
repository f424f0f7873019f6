"""Cold import cost of the function app against azure.functions alone (what indexing pays).

Runs `python -X importtime -c "import function_app"` in fresh processes and reads, from the same
run, the cumulative microseconds of `function_app` and of `azure.functions`. Prints the median of
each and their ratio (1.0 would mean the app adds nothing to the library's own import).

    .venv/bin/python scripts/bench_import.py [runs]
"""

from __future__ import annotations

import os
import re
import secrets
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$")


def one_run() -> tuple[int, int]:
    env = {
        **os.environ,
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "AUTH_ISSUER": "https://issuer.example",
        "AUTH_AUDIENCE": "meetings",
        "AUTH_JWKS_URL": "https://issuer.example/jwks",
        "STRIPE_WEBHOOK_SECRET": f"whsec_{secrets.token_hex(16)}",
    }
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cumulative: dict[str, int] = {}
    for line in result.stderr.splitlines():
        match = LINE.match(line)
        if match and match.group(3) in ("function_app", "azure.functions"):
            cumulative[match.group(3)] = int(match.group(1))
    return cumulative["function_app"], cumulative["azure.functions"]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    samples = [one_run() for _ in range(runs)]
    app = statistics.median(s[0] for s in samples)
    library = statistics.median(s[1] for s in samples)
    ratios = sorted(s[0] / s[1] for s in samples)
    print(f"runs: {runs}")
    print(f"import function_app   median {app / 1000:.1f} ms (cumulative)")
    print(f"import azure.functions median {library / 1000:.1f} ms (same runs)")
    print(
        f"ratio function_app / azure.functions: median {statistics.median(ratios):.2f} "
        f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f})"
    )


if __name__ == "__main__":
    main()
