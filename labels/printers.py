"""Sending rendered labels to devices: raw TCP (port 9100) and CUPS queues."""

from __future__ import annotations

import re
import socket
import subprocess


class PrinterError(RuntimeError):
    """The printer could not be reached or refused the job."""


def send_tcp(address: str, data: bytes, *, timeout: float = 5.0) -> None:
    """Send raw bytes (ZPL) to ``host:port`` (port 9100 when omitted)."""
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "9100")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
    except (OSError, ValueError) as error:
        raise PrinterError(f"printer at {address} did not take the job: {error}") from None


REQUEST_ID = re.compile(r"request id is (\S+)")


def send_cups(queue: str, data: bytes, *, raw: bool, server: str | None = None,
              title: str = "labels", timeout: float = 30.0) -> str:
    """Hand a job to a CUPS queue with ``lp`` (raw for ZPL, as a document for PDF).

    *server* is the CUPS server as ``host[:port]`` (the local one, or ``CUPS_SERVER``, when
    omitted). Returns CUPS's request id (``queue-123``): from then on CUPS holds the job and
    retries the device itself.
    """
    where = f"CUPS queue {queue}" + (f" on {server}" if server else "")
    if not queue or queue.startswith("-") or (server or "").startswith("-"):
        raise PrinterError(f"{where}: not a queue name or server that lp could take as such")
    command = ["lp", *(["-h", server] if server else []), "-d", queue, "-t", title,
               *(["-o", "raw"] if raw else []), "-"]
    try:
        result = subprocess.run(command, input=data, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PrinterError(f"{where}: {error}") from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip() or f"lp exited {result.returncode}"
        raise PrinterError(f"{where}: {message}")
    found = REQUEST_ID.search(result.stdout.decode(errors="replace"))
    if found is None:
        raise PrinterError(f"{where}: lp did not say which request it queued")
    return found.group(1)
