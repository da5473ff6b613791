"""scripts/render_dashboard.py without Prometheus: Grafana's variables, legends, units, the grid."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("render_dashboard", ROOT / "scripts" / "render_dashboard.py")
render = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("render_dashboard", render)  # dataclasses look their module up
_spec.loader.exec_module(render)

DASHBOARD = json.loads((ROOT / "docs" / "grafana" / "posray-dashboard.json").read_text())


class TestDurations:
    @pytest.mark.parametrize("text, seconds", [("10s", 10), ("500ms", 0.5), ("1m30s", 90), ("2h", 7200),
                                               ("15", 15), (">10s", 10)])
    def test_parse(self, text, seconds):
        assert render.parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "10x", "s10", "1m 30s"])
    def test_parse_refuses_garbage(self, text):
        with pytest.raises(ValueError):
            render.parse_duration(text)

    def test_format_is_whole_seconds_or_milliseconds(self):
        assert render.format_duration(40) == "40s"
        assert render.format_duration(40.2) == "41s"
        assert render.format_duration(0.25) == "250ms"


class TestGrafanaIntervals:
    def test_rate_interval_is_grafanas_rule(self):
        # max($__interval + scrape interval, 4 x scrape interval)
        assert render.rate_interval_s(interval_s=2, scrape_interval_s=2) == 8
        assert render.rate_interval_s(interval_s=10, scrape_interval_s=10) == 40
        assert render.rate_interval_s(interval_s=60, scrape_interval_s=10) == 70

    def test_panel_min_interval_counts_as_the_scrape_interval(self):
        got = render.builtin_variables(range_s=600, step_s=2, panel_interval_s=10, scrape_interval_s=2)
        assert got["__interval"] == "10s"
        assert got["__rate_interval"] == "40s"
        assert got["__range"] == "600s"

    def test_without_a_min_interval_the_data_source_scrape_interval_is_used(self):
        got = render.builtin_variables(range_s=600, step_s=2, panel_interval_s=None, scrape_interval_s=2)
        assert got["__rate_interval"] == "8s"

    def test_an_explicit_rate_interval_wins(self):
        got = render.builtin_variables(600, 2, 10, 2, rate_interval=30)
        assert got["__rate_interval"] == "30s"

    def test_time_axis_ticks_are_round_and_few(self):
        assert render.tick_seconds(285) == 30
        assert render.tick_seconds(300) == 30
        assert render.tick_seconds(1800) == 300
        assert render.tick_seconds(40) == 5
        assert render.tick_seconds(10 ** 9) == 86400

    def test_step_respects_points_and_min_interval(self):
        assert render.query_step_s(range_s=400, max_points=400) == 1
        assert render.query_step_s(range_s=4000, max_points=400) == 10
        assert render.query_step_s(range_s=400, min_interval_s=10) == 10


class TestVariables:
    def test_all_becomes_the_all_value(self):
        assert render.template_values(DASHBOARD)["SessionName"] == ".+"

    def test_datasource_variable_is_not_substituted(self):
        assert "datasource" not in render.template_values(DASHBOARD)

    def test_override(self):
        assert render.template_values(DASHBOARD, {"SessionName": "session_x"})["SessionName"] == "session_x"

    def test_current_value_without_all(self):
        dashboard = {"templating": {"list": [
            {"name": "shard", "type": "custom", "current": {"value": ["1", "3"]}},
            {"name": "one", "type": "custom", "current": {"value": "7"}},
            {"name": "none", "type": "query", "includeAll": True, "current": {}},
        ]}}
        assert render.template_values(dashboard) == {"shard": "(1|3)", "one": "7", "none": ".*"}

    def test_substitute_every_syntax(self):
        variables = {"SessionName": ".+", "__rate_interval": "40s"}
        expr = 'rate(x{SessionName=~"$SessionName", a=~"${SessionName}", b=~"[[SessionName]]"}[$__rate_interval])'
        assert render.substitute(expr, variables) == 'rate(x{SessionName=~".+", a=~".+", b=~".+"}[40s])'

    def test_format_suffix_is_accepted(self):
        assert render.substitute("${SessionName:regex}", {"SessionName": "s"}) == "s"

    def test_longest_name_first(self):
        assert render.substitute("$__interval $__interval_ms", {"__interval": "10s", "__interval_ms": "10000"}) \
            == "10s 10000"

    def test_unknown_variable_is_left_for_prometheus_to_report(self):
        assert render.substitute("x[$nope]", {"a": "1"}) == "x[$nope]"

    def test_every_dashboard_query_is_fully_substituted(self):
        variables = {**render.template_values(DASHBOARD), **render.builtin_variables(600, 10, 10, 2)}
        for panel in render.flatten_panels(DASHBOARD):
            for target in panel.get("targets", []):
                assert "$" not in render.substitute(target["expr"], variables), target["expr"]


class TestLegendAndUnits:
    def test_legend_format(self):
        assert render.legend_label("p99 shard {{shard}}", {"shard": "3"}) == "p99 shard 3"
        assert render.legend_label("{{ reason }} ({{endpoint}})", {"reason": "invalid", "endpoint": "single"}) \
            == "invalid (single)"

    def test_legend_without_format_shows_the_labels(self):
        assert render.legend_label("", {"__name__": "up", "job": "ray"}) == 'up{job="ray"}'
        assert render.legend_label(None, {}) == "value"

    @pytest.mark.parametrize("value, unit, text", [
        (12.5, "ms", "12.5 ms"), (1500, "ms", "1.5 s"), (90, "s", "1.5 min"), (3, "s", "3 s"),
        (2500, "short", "2.5 K"), (12, "short", "12"), (250, "reqps", "250 req/s"),
        (2500, "count:docs/s", "2.5 K docs/s"), (0.5, "percentunit", "50%"), (None, "ms", "-"),
        (math.nan, "short", "-"),
    ])
    def test_format_value(self, value, unit, text):
        assert render.format_value(value, unit) == text

    def test_legend_calcs_skip_missing_points(self):
        values = [1.0, math.nan, 5.0, 3.0, math.nan]
        assert render.legend_calc("lastNotNull", values) == 3.0
        assert render.legend_calc("max", values) == 5.0
        assert render.legend_calc("mean", values) == 3.0
        assert render.legend_calc("max", [math.nan]) is None


class TestGrid:
    def test_dashboard_height_is_the_lowest_panel_edge(self):
        assert render.grid_rows(render.flatten_panels(DASHBOARD)) == 40

    def test_collapsed_rows_contribute_their_panels(self):
        dashboard = {"panels": [{"type": "row", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
                                 "panels": [{"id": 9, "gridPos": {"x": 0, "y": 1, "w": 24, "h": 6}}]}]}
        assert [p.get("id") for p in render.flatten_panels(dashboard)] == [None, 9]
        assert render.grid_rows(render.flatten_panels(dashboard)) == 7

    def test_rects_follow_grid_positions(self):
        layout = render.Layout(width_in=24.32, row_in=0.5, header_in=1.0, footer_in=0.0, margin_in=0.16,
                               gap_in=0.0)
        rows = 16
        page_h = layout.page_height_in(rows)
        left, bottom, width, height = layout.rect({"x": 0, "y": 0, "w": 12, "h": 8}, rows)
        assert left == pytest.approx(0.16 / 24.32)
        assert width == pytest.approx(12 / 24.32)            # one column is one inch here
        assert height == pytest.approx(4 / page_h)
        assert bottom + height == pytest.approx(1 - 1.0 / page_h)   # right under the header
        right = layout.rect({"x": 12, "y": 8, "w": 12, "h": 8}, rows)
        assert right[0] == pytest.approx(left + width)
        assert right[1] == pytest.approx(0.0)                 # the bottom row touches the page edge

    def test_panels_of_the_dashboard_do_not_overlap(self):
        layout = render.Layout()
        panels = [p for p in render.flatten_panels(DASHBOARD) if p.get("type") != "row"]
        rects = [layout.rect(p["gridPos"], render.grid_rows(panels)) for p in panels]
        for i, a in enumerate(rects):
            for b in rects[i + 1:]:
                overlap_x = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
                overlap_y = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
                assert overlap_x <= 1e-9 or overlap_y <= 1e-9
            assert 0 <= a[0] and a[0] + a[2] <= 1 and 0 <= a[1] and a[1] + a[3] <= 1


class TestParseTime:
    def test_iso_without_zone_is_utc(self):
        assert render.parse_time("2026-01-01T00:00:00") == render.parse_time("2026-01-01T00:00:00Z")

    def test_unix_seconds(self):
        assert render.parse_time("1700000000") == 1700000000.0
