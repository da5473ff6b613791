"""The notebooks run headless on the snapshot of a small generated ledger and draw their charts.

The ledger is a database of this module's own, created and dropped here (other integration
tests write into the shared one). Its snapshot and merchants.csv go into a temporary data
folder, and each notebook runs top to bottom in a fresh kernel with POSRAY_SNAPSHOT set, as a
data scientist would run it against `posray analytics snapshot`'s folder.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jobs.snapshot import export_snapshot
from jobs.arguments import MERCHANTS_FILE
from tooling.analytics_cli import write_merchants
from posray.services.loading import load_into_ledger
from posray.synthetic.generator import GeneratorConfig, build_world
from posray.settings import Settings
from tests.conftest import private_database

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("01_retail_overview", "02_fiscal_and_integrity")
# Three weeks, so the demand backtest has two weeks before the held-out one; two merchants of
# each kind, so every terminal has peers for the refund check.
CONFIG = GeneratorConfig(seed=3, merchants=12, start=date(2026, 3, 2), days=21, documents=3000, shard_count=4)
CELL_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def data_dir(run_id, seed_file, tmp_path_factory):
    """A data folder holding the snapshot of a freshly generated ledger and merchants.csv."""
    with private_database(f"posray_{run_id}_notebooks") as dsn:
        load_into_ledger(dsn, seed_file, CONFIG, settings=Settings(public_base_url="http://posray.test"))
        folder = tmp_path_factory.mktemp("data")
        export_snapshot(dsn, folder / "snapshot")
        write_merchants(folder / MERCHANTS_FILE, build_world(CONFIG))
        yield folder


@pytest.fixture(scope="module")
def executed(data_dir) -> dict:
    """Each notebook after a headless run (a cell that raises fails the run)."""
    env = {**os.environ, "POSRAY_SNAPSHOT": str(data_dir / "snapshot")}
    env.pop("POSRAY_MERCHANT_KINDS", None)
    runs = {}
    for name in NAMES:
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute(env=env)
        runs[name] = notebook
    return runs


def outputs(cell) -> list[dict]:
    return cell.get("outputs", [])


def text_of(cell) -> str:
    parts = []
    for output in outputs(cell):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts.append(data.get("text/html", "") + data.get("text/plain", ""))
    return "\n".join(parts)


class TestNotebooks:
    @pytest.mark.parametrize("name", NAMES)
    def test_every_code_cell_ran_without_an_error(self, executed, name):
        cells = [c for c in executed[name].cells if c.cell_type == "code"]
        assert cells and all(c.get("execution_count") for c in cells)
        assert not [o for c in cells for o in outputs(c) if o["output_type"] == "error"]

    @pytest.mark.parametrize("name", NAMES)
    def test_every_chart_cell_shows_an_image(self, executed, name):
        charts = [c for c in executed[name].cells if "chart" in c.metadata.get("tags", [])]
        assert len(charts) >= 5
        for cell in charts:
            assert any("image/png" in o.get("data", {}) for o in outputs(cell)), cell.source

    @pytest.mark.parametrize("name", NAMES)
    def test_notebooks_are_stored_without_outputs(self, name):
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(notebook)
        assert not [c for c in notebook.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]

    def test_the_retail_notebook_reads_the_given_snapshot_and_backtests_the_last_full_week(self, executed, data_dir):
        text = "\n".join(text_of(c) for c in executed["01_retail_overview"].cells)
        assert f"snapshot {data_dir / 'snapshot'}, charts in EUR" in text
        assert "held-out week 2026-03-16 to 2026-03-22" in text

    def test_the_integrity_notebook_names_each_planted_terminal(self, executed):
        findings = text_of(executed["02_fiscal_and_integrity"].cells[-1])
        planted = build_world(CONFIG).planted
        for terminal in (planted.counter_gaps, planted.late_upload, planted.refund_heavy, planted.duplicates):
            assert terminal in findings
