"""Start and stop Azurite (the storage emulator from npm) on free ports."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Azurite's documented, public development account; it protects nothing.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)"
)


class AzuriteError(RuntimeError):
    pass


@dataclass
class Azurite:
    process: subprocess.Popen[str]
    blob_port: int
    queue_port: int
    table_port: int
    persistent: bool = False
    host: str = "127.0.0.1"

    @property
    def connection_string(self) -> str:
        base = f"http://{self.host}"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT_NAME};"
            f"QueueEndpoint={base}:{self.queue_port}/{ACCOUNT_NAME};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT_NAME};"
        )

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        if not self.persistent:
            # Nothing to flush; a graceful stop would wait for idle keep-alive connections.
            self.process.kill()
            self.process.wait(timeout=5)
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def azurite_command() -> str:
    local = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise AzuriteError(
        "Azurite is not installed: run `npm ci` in the repository root (or `make setup`)"
    )


def start_azurite(
    *,
    location: Path | None = None,
    ports: tuple[int, int, int] = (0, 0, 0),
    timeout: float = 60.0,
    log_file: Path | None = None,
) -> Azurite:
    """Start Azurite (in memory unless `location` is given) and wait until it listens."""
    command = [
        azurite_command(),
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        "--blobHost",
        "127.0.0.1",
        "--queueHost",
        "127.0.0.1",
        "--tableHost",
        "127.0.0.1",
        "--blobPort",
        str(ports[0]),
        "--queuePort",
        str(ports[1]),
        "--tablePort",
        str(ports[2]),
    ]
    if location is None:
        command.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        command += ["--location", str(location)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    assert process.stdout is not None
    found: dict[str, int] = {}
    lines: list[str] = []
    deadline = time.monotonic() + timeout

    def read_until_listening() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = _LISTENING.search(line)
            if match:
                found[match.group(1)] = int(match.group(2))
            if len(found) == 3:
                break

    reader = threading.Thread(target=read_until_listening, daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    if len(found) < 3:
        process.kill()
        raise AzuriteError("Azurite did not start:\n" + "".join(lines[-20:]))
    # Keep draining its output so Azurite never blocks on a full pipe.
    threading.Thread(target=_drain, args=(process, log_file), daemon=True).start()
    return Azurite(
        process, found["Blob"], found["Queue"], found["Table"], persistent=location is not None
    )


def _drain(process: subprocess.Popen[str], log_file: Path | None) -> None:
    assert process.stdout is not None
    sink = log_file.open("a") if log_file else None
    try:
        for line in process.stdout:
            if sink:
                sink.write(line)
                sink.flush()
    finally:
        if sink:
            sink.close()
