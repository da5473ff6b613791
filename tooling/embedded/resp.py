"""A minimal RESP client for the embedded servers' own checks (role, Sentinel views, WAITAOF).

The shell does not import redis-py (only posray.adapters talk to Redis for posray itself);
these few blocking commands on a fresh connection each are all the embedded helpers need.
"""

from __future__ import annotations

import socket

from tooling.embedded.common import EmbeddedError, _HOST

_IO_TIMEOUT_S = 1.0



def role(port: int) -> str | None:
    reply = try_command(port, "ROLE")
    return reply[0] if isinstance(reply, list) and reply else None


def pairs(reply) -> dict:
    if not isinstance(reply, list):
        return {}
    return dict(zip(reply[0::2], reply[1::2]))


def try_command(port: int, *args: str):
    """One command's reply (strings decoded), or None when the server does not answer."""
    return try_commands(port, args)


def try_commands(port: int, *commands: tuple[str, ...]):
    """The last reply of `commands`, sent in order on one connection (None on any failure).

    One connection matters for WAITAOF: it waits for the offset of its own connection's writes.
    """
    try:
        with socket.create_connection((_HOST, port), timeout=_IO_TIMEOUT_S) as sock:
            stream = sock.makefile("rb")
            reply = None
            for args in commands:
                sock.sendall(_encode(*args))
                reply = _read(stream)
            return reply
    except (OSError, EmbeddedError, ValueError):
        return None


def _encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read(stream):
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise EmbeddedError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise EmbeddedError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else stream.read(n + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(stream) for _ in range(n)]
    raise EmbeddedError(f"unexpected reply {line!r}")
