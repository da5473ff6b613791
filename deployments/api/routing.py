"""The route table's types and its resolver: (method, path) to a handler and its path parameters.

A route's path is a template: `{name}` is one path segment (possibly empty: handlers validate
what they read), `{name:path}` is the rest of the path, slashes included. Exact paths are found
with one dict lookup; templates are compiled once, when the table is built, and tried in table
order (so a more specific template must come before a more general one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

# A handler's answer: status, body, headers (ASGI byte pairs).
Response = tuple[int, bytes, list]
ANY = "*"
_PARAMETER = re.compile(r"{([a-z_]+)(?::(path))?}")
_CONVERTORS = {None: "[^/]*", "path": ".*"}


@dataclass(slots=True)
class Request:
    """What a handler gets: the ASGI scope and receive, its path parameters and the backend.

    `backend` is None for a route declared with backend=False; `build` awaits it (and raises
    what building it raises), for /readyz.
    """

    scope: dict
    receive: Callable[[], Awaitable[dict]]
    params: dict[str, str]
    backend: Any
    build: Callable[[], Awaitable[Any]]


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    """One line of the table.

    Attributes:
        method: "GET", "POST" ..., or ANY for every method.
        path: the template, e.g. "/v1/receipts/{code}/proof".
        handler: an async function of a Request.
        operator: the operator's bearer token is checked before the handler runs.
        backend: the backend is built (awaited) before the handler runs.
        documented: part of the public OpenAPI document (catch-alls that only refuse are not).
    """

    method: str
    path: str
    handler: Handler
    operator: bool = False
    backend: bool = True
    documented: bool = True

    @property
    def is_template(self) -> bool:
        return "{" in self.path


@dataclass(slots=True)
class _Compiled:
    route: Route
    regex: re.Pattern


@dataclass(slots=True)
class Router:
    """Resolves requests against a table of routes (built once per process)."""

    routes: tuple[Route, ...]
    _exact: dict[tuple[str, str], Route] = field(default_factory=dict)
    _templates: list[_Compiled] = field(default_factory=list)

    def __post_init__(self) -> None:
        for route in self.routes:
            if route.is_template:
                self._templates.append(_Compiled(route, compile_template(route.path)))
            elif self._exact.setdefault((route.method, route.path), route) is not route:
                raise ValueError(f"two routes for {route.method} {route.path}")

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route answering `method path`, with its path parameters; None when there is none."""
        route = self._exact.get((method, path)) or self._exact.get((ANY, path))
        if route is not None:
            return route, {}
        for compiled in self._templates:
            if compiled.route.method in (method, ANY):
                found = compiled.regex.fullmatch(path)
                if found is not None:
                    return compiled.route, found.groupdict()
        return None


def compile_template(template: str) -> re.Pattern:
    """The regular expression of a path template (its literal parts escaped)."""
    out, at = [], 0
    for parameter in _PARAMETER.finditer(template):
        out.append(re.escape(template[at:parameter.start()]))
        out.append(f"(?P<{parameter[1]}>{_CONVERTORS[parameter[2]]})")
        at = parameter.end()
    out.append(re.escape(template[at:]))
    return re.compile("".join(out), re.DOTALL)  # a decoded path may hold a newline: it is matched too
