"""The Grafana dashboard and docs/operations.md name exactly the series actors/metrics.py declares."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "docs" / "grafana" / "posray-dashboard.json").read_text())
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
DECLARED = re.findall(r'(Counter|Gauge|Histogram)\(\s*"(posray_\w+)"', (ROOT / "actors" / "metrics.py").read_text())


def exported() -> dict[str, set[str]]:
    """Declared name -> the sample names Ray exports for it."""
    suffixes = {"Counter": ["_total"], "Gauge": [""], "Histogram": ["_bucket", "_sum", "_count"]}
    return {name: {f"ray_{name}{s}" for s in suffixes[kind]} for kind, name in DECLARED}


def queries() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]


class TestTheDashboard:
    def test_every_panel_and_query_uses_the_datasource_variable(self):
        variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in DASHBOARD["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}"
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])

    def test_queries_use_only_exported_sample_names(self):
        known = set().union(*exported().values())
        used = {m for q in queries() for m in re.findall(r"\bray_posray_\w+", q)}
        assert used and used <= known, used - known

    def test_every_declared_series_is_drawn(self):
        text = " ".join(queries())
        assert [n for n, samples in exported().items() if not any(s in text for s in samples)] == []

    def test_panels_do_not_overlap(self):
        cells = set()
        for panel in DASHBOARD["panels"]:
            g = panel["gridPos"]
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, panel["title"]
            cells |= mine


class TestTheOperationsGuide:
    def test_every_series_is_explained_under_its_exported_name(self):
        assert len(DECLARED) == 11
        for kind, name in DECLARED:
            documented = f"ray_{name}_total" if kind == "Counter" else f"ray_{name}"
            assert f"| `{documented}` |" in OPERATIONS, name
