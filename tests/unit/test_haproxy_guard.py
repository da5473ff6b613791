"""The hardening applied to Serve's generated HAProxy configuration (deployments/haproxy_guard.py)."""

from __future__ import annotations

import pytest

from deployments.haproxy_guard import UnsafeConfig, guard

SERVE_LIKE = """global
    stats socket /tmp/phx-x/n/admin.sock mode 666 level admin expose-fd listeners
    maxconn 4096
defaults
    mode http
    timeout client 30s
frontend prometheus
    bind :9101
    mode http
frontend http_frontend
    bind 127.0.0.1:8000
listen stats
  bind *:8404
  stats enable
"""


def test_the_admin_socket_becomes_private_and_stats_and_metrics_local():
    text = guard(SERVE_LIKE)
    assert "mode 600 level admin" in text and "mode 666" not in text
    assert "    bind 127.0.0.1:9101" in text and "  bind 127.0.0.1:8404" in text
    assert "    bind 127.0.0.1:8000" in text  # the ingress itself is left as configured


def test_the_defaults_get_a_request_timeout_and_body_buffering():
    defaults = guard(SERVE_LIKE).split("defaults\n", 1)[1].split("frontend", 1)[0]
    assert "timeout http-request 10s" in defaults and "option http-buffer-request" in defaults


@pytest.mark.parametrize("line", ["    stats socket /tmp/phx-x/n/admin.sock mode 666 level admin expose-fd listeners\n",
                                  "  bind *:8404\n", "    bind :9101\n", "defaults\n"])
def test_a_template_the_rules_no_longer_match_is_refused(line):
    with pytest.raises(UnsafeConfig):
        guard(SERVE_LIKE.replace(line, ""))
