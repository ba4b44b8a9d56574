"""Sending rendered labels to devices: raw TCP (port 9100) and CUPS queues."""

from __future__ import annotations

import re
import socket
import subprocess
from dataclasses import dataclass


class PrinterError(RuntimeError):
    """The printer could not be reached or refused the job."""


#: how long a Zebra gets to answer ~HS
STATUS_TIMEOUT = 3.0
_STX, _ETX = b"\x02", b"\x03"


@dataclass(frozen=True)
class PrinterStatus:
    """What a Zebra answers to ``~HS`` (host status): its three strings, as flags."""

    paper_out: bool = False
    paused: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    buffer_full: bool = False
    corrupt_ram: bool = False
    under_temperature: bool = False
    over_temperature: bool = False
    formats_in_buffer: int = 0
    labels_remaining: int = 0

    @property
    def faults(self) -> list[str]:
        """What stops the printer printing, in words; empty when it is ready."""
        names = {
            "paper_out": "paper out",
            "ribbon_out": "ribbon out",
            "head_open": "head open",
            "paused": "paused",
            "buffer_full": "receive buffer full",
            "corrupt_ram": "configuration lost",
            "under_temperature": "head too cold",
            "over_temperature": "head too hot",
        }
        return [words for flag, words in names.items() if getattr(self, flag)]

    @property
    def summary(self) -> str:
        return ", ".join(self.faults) or "ready"


def _flag(fields: list[str], i: int) -> bool:
    if fields[i].strip() not in ("0", "1"):
        raise ValueError(fields[i])
    return fields[i].strip() == "1"


def parse_host_status(data: bytes) -> PrinterStatus:
    """Read the answer to ``~HS``: three ``<STX>…<ETX><CR><LF>`` strings, the first
    ``aaa,b,c,dddd,eee,f,g,h,iii,j,k,l`` (b paper out, c pause, eee formats in the receive
    buffer, f buffer full, j corrupt RAM, k/l under/over temperature), the second
    ``mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www`` (o head up, p ribbon out, u labels remaining).

    Raises
    ------
    PrinterError
        For anything else: an answer that cannot be read is not a ready printer.
    """
    strings = []
    for part in data.split(_STX)[1:]:
        body, found, _ = part.partition(_ETX)
        if found:
            strings.append(body.decode("ascii", errors="replace").split(","))
    try:
        first, second = strings[0], strings[1]
        return PrinterStatus(
            paper_out=_flag(first, 1),
            paused=_flag(first, 2),
            buffer_full=_flag(first, 5),
            corrupt_ram=_flag(first, 9),
            under_temperature=_flag(first, 10),
            over_temperature=_flag(first, 11),
            formats_in_buffer=int(first[4]),
            head_open=_flag(second, 2),
            ribbon_out=_flag(second, 3),
            labels_remaining=int(second[8]),
        )
    except (IndexError, ValueError):
        raise PrinterError(f"the printer's answer to ~HS could not be read: {data[:120]!r}") from None


class PrinterFault(PrinterError):
    """The printer reports a fault (or stays silent, as a Zebra does when out of media or
    ribbon or with its head open). *delivered*: whether it had taken the job first, in which
    case it holds the job and prints it once the fault is cleared: sending it again would
    print the labels twice."""

    def __init__(self, message: str, *, status: PrinterStatus | None, delivered: bool) -> None:
        super().__init__(message)
        self.status = status
        self.delivered = delivered

    @property
    def summary(self) -> str:
        return self.status.summary if self.status else "no answer to ~HS"


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "9100")
    return host, int(port)


def _ask_status(sock: socket.socket, address: str, *, delivered: bool) -> PrinterStatus:
    """Send ``~HS`` and read the three strings; a fault or silence is a :class:`PrinterFault`."""
    sock.sendall(b"~HS")
    sock.settimeout(STATUS_TIMEOUT)
    answer = b""
    try:
        while answer.count(_ETX) < 3:
            chunk = sock.recv(1024)
            if not chunk:
                break
            answer += chunk
    except TimeoutError:
        pass
    held = " (it holds the job and prints it once that is cleared)" if delivered else ""
    if answer.count(_ETX) < 2:
        raise PrinterFault(
            f"printer at {address} did not answer ~HS within "
            f"{STATUS_TIMEOUT:g} s: a Zebra stays silent when out of media or "
            f"ribbon or with its head open{held}",
            status=None,
            delivered=delivered,
        )
    status = parse_host_status(answer)
    if status.faults:
        raise PrinterFault(
            f"printer at {address} reports {status.summary}{held}", status=status, delivered=delivered
        )
    return status


def send_tcp(
    address: str, data: bytes, *, timeout: float = 5.0, ask_status: bool = False
) -> PrinterStatus | None:
    """Send raw bytes (ZPL) to ``host:port`` (port 9100 when omitted).

    With *ask_status*, ask the printer (``~HS``) before and after: a fault before sending
    keeps the job back (:class:`PrinterFault`, not delivered); a fault after it is reported
    as delivered. Returns the status after sending, or None without *ask_status*.
    """
    try:
        with socket.create_connection(_split(address), timeout=timeout) as sock:
            if ask_status:
                _ask_status(sock, address, delivered=False)
                sock.settimeout(timeout)
            sock.sendall(data)
            status = _ask_status(sock, address, delivered=True) if ask_status else None
            sock.shutdown(socket.SHUT_WR)
            return status
    except PrinterError:
        raise
    except (OSError, ValueError) as error:
        raise PrinterError(f"printer at {address} did not take the job: {error}") from None


def query_status(address: str, *, timeout: float = 5.0) -> PrinterStatus:
    """Ask a Zebra its status (``~HS``) without sending a job.

    Raises
    ------
    PrinterFault
        When it reports a fault or stays silent.
    PrinterError
        When it cannot be reached.
    """
    try:
        with socket.create_connection(_split(address), timeout=timeout) as sock:
            return _ask_status(sock, address, delivered=False)
    except PrinterError:
        raise
    except (OSError, ValueError) as error:
        raise PrinterError(f"printer at {address} cannot be reached: {error}") from None


REQUEST_ID = re.compile(r"request id is (\S+)")


def send_cups(
    queue: str,
    data: bytes,
    *,
    raw: bool,
    server: str | None = None,
    title: str = "labels",
    timeout: float = 30.0,
) -> str:
    """Hand a job to a CUPS queue with ``lp`` (raw for ZPL, as a document for PDF).

    *server* is the CUPS server as ``host[:port]`` (the local one, or ``CUPS_SERVER``, when
    omitted). Returns CUPS's request id (``queue-123``): from then on CUPS holds the job and
    retries the device itself.
    """
    where = f"CUPS queue {queue}" + (f" on {server}" if server else "")
    if not queue or queue.startswith("-") or (server or "").startswith("-"):
        raise PrinterError(f"{where}: not a queue name or server that lp could take as such")
    command = [
        "lp",
        *(["-h", server] if server else []),
        "-d",
        queue,
        "-t",
        title,
        *(["-o", "raw"] if raw else []),
        "-",
    ]
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
