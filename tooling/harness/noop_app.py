"""An empty Serve application deployed beside posray with the same ingress settings: the no-op ceiling.

`posray bench --baselines` deploys it as a second Serve application under its own route prefix,
so the same HAProxy port serves it, drives it with the same requests as posray, and deletes it.
The replicas read the request body and answer 200 with a small JSON body; nothing else.
"""

from __future__ import annotations

import time

import ray
from ray import serve

from deployments import launcher
from deployments.ingress import REPLICA_ENV
from posray.settings import Settings

APP_NAME = "posray-noop"
ROUTE_PREFIX = "/noop"
READY_TIMEOUT_S = 180
_ANSWER = b'{"status":"accepted","shard":0,"seq":0}'
_HEADERS = [(b"content-type", b"application/json")]


class NoopApi:
    """The ASGI callable (an object: Serve would call a plain function as an app builder)."""

    async def __call__(self, scope, receive, send) -> None:
        """Read the whole request body, then answer 200 with a small JSON body."""
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": _ANSWER})


def build_noop_app(settings: Settings):
    """The bound no-op application with posray's replica count, request limit and num_cpus=0."""

    @serve.deployment(
        name="NoopIngress",
        num_replicas=settings.replicas,
        max_ongoing_requests=settings.replica_ongoing_requests_max,
        ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": REPLICA_ENV}},
        health_check_period_s=5,
        logging_config={"enable_access_log": False},
    )
    @serve.ingress(NoopApi())
    class NoopIngress:
        pass

    return NoopIngress.bind()


def deploy_noop(settings: Settings, base_url: str) -> str:
    """Deploy the no-op app on posray's Ray cluster; wait until `base_url` serves it; return its prefix.

    Raises:
        RuntimeError: no Ray to connect to, or the app did not answer in time.
    """
    _connect(settings)
    serve.run(build_noop_app(settings), name=APP_NAME, route_prefix=ROUTE_PREFIX, blocking=False)
    _wait_http(f"{base_url.rstrip('/')}{ROUTE_PREFIX}/healthz")
    return ROUTE_PREFIX


def delete_noop(settings: Settings) -> None:
    """Delete the no-op app (posray's own app is untouched)."""
    _connect(settings)
    serve.delete(APP_NAME)


def _connect(settings: Settings) -> None:
    if ray.is_initialized():
        return
    if not settings.ray_address:
        raise RuntimeError("no Ray address known (run `posray up` here or set POSRAY_RAY_ADDRESS)")
    launcher.connect(settings.ray_address, settings)


def _wait_http(url: str) -> None:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, content=b"{}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the no-op Serve app did not answer on {url}")
