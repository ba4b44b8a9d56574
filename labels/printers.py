"""Sending rendered labels to devices: raw TCP (port 9100) and CUPS queues."""

from __future__ import annotations

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


def send_cups(queue: str, data: bytes, *, raw: bool, timeout: float = 30.0) -> None:
    """Hand a job to a CUPS queue with ``lp`` (raw for ZPL, as a document for PDF)."""
    command = ["lp", "-d", queue, *(["-o", "raw"] if raw else []), "-"]
    try:
        result = subprocess.run(command, input=data, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PrinterError(f"CUPS queue {queue}: {error}") from None
    if result.returncode != 0:
        raise PrinterError(f"CUPS queue {queue}: {result.stderr.decode(errors='replace').strip()}")
