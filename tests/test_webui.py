"""NNI's web UI shows our trials: their fitness in the trials table and their per-epoch curves.

A tiny toy experiment runs to DONE with its manager kept up; headless Chromium (driven over the
DevTools protocol, see tests/browser.py) then opens the overview and the trials-detail page of the
React app and the test compares what the page renders with what the REST API holds. Screenshots
go to the test's tmp_path.

Selectors are those of NNI 3.0's web UI (Fluent UI DetailsList rows, ``[role=tab]`` pivots, the
per-row "Intermediate" button, echarts-for-react charts).
"""

from __future__ import annotations

import json
import math
import re
import time

import pytest

from nas_core.nni_adapter import experiment as nni_experiment
from nas_core.nni_adapter import rest
from tests.browser import Browser, BrowserUnavailable, ensure_chromium
from tests.test_nni_e2e import free_port

pytestmark = pytest.mark.slow

EPOCHS = 3  # ToyEvaluator reports 3 intermediate results

# every trial row of the DetailsList as {column key: text}
ROWS = """Array.from(document.querySelectorAll('.ms-DetailsRow')).map(r => Object.fromEntries(
    Array.from(r.querySelectorAll('[data-automation-key]')).map(c => [c.getAttribute('data-automation-key'),
                                                                     c.innerText.trim()])))"""

# pixels of a chart's canvas in a saturated colour: the series lines (axes, grid and labels are grey)
COLOURED_PIXELS = """((canvas) => {
    if (!canvas || !canvas.width || !canvas.height) return 0;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 80) n++;
    }
    return n;
})(document.querySelector(%s))"""

# the option (legend and series) that NNI passed to the echarts-for-react component under SELECTOR
CHART_OPTION = """((el) => {
    if (!el) return null;
    const key = Object.keys(el).find(k => k.startsWith('__reactFiber$') || k.startsWith('__reactInternalInstance$'));
    for (let f = key && el[key]; f; f = f.return) {
        const o = f.memoizedProps && f.memoizedProps.option;
        if (o && o.series) return {legend: (o.legend || {}).data || null,
                                   series: o.series.map(s => ({name: s.name, data: s.data}))};
    }
    return null;
})(document.querySelector(%s))"""

INTERMEDIATE_TAB = ("Array.from(document.querySelectorAll('[role=tab]'))"
                    ".find(t => t.innerText.includes('Intermediate result'))")


def metric_value(raw: str) -> float:
    """The ``default`` value of one reported metric (NNI stores it JSON-encoded twice)."""
    data = json.loads(raw)
    if isinstance(data, str):
        data = json.loads(data)
    return float(data["default"]) if isinstance(data, dict) else float(data)


def row_of(trial_id: str) -> str:
    return ("Array.from(document.querySelectorAll('.ms-DetailsRow')).find(r => "
            f"r.querySelector('[data-automation-key=id]').innerText.trim().startsWith({json.dumps(trial_id)}))")


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return ensure_chromium()
    except BrowserUnavailable as err:
        pytest.skip(f"no headless browser: {err}")


def test_web_ui_lists_trials_with_fitness_and_intermediate_curves(make_toy_config, chromium, tmp_path):
    config = make_toy_config(maxTrialNumber=4, trialConcurrency=2, trial_args={"sleep": 0.3})
    port = free_port()
    started = time.monotonic()
    exp = nni_experiment.start(config, port=port, host="127.0.0.1")
    try:
        outcome = nni_experiment.wait(exp, poll=0.5, progress=False, timeout=90)
        assert outcome.status == "DONE", outcome.errors
        jobs = rest.get(port, "trial-jobs")
        assert len(jobs) == 4 and all(job["status"] == "SUCCEEDED" for job in jobs), jobs
        fitness = {job["trialJobId"]: metric_value(job["finalMetricData"][0]["data"]) for job in jobs}
        curves = {job["trialJobId"]: [metric_value(m["data"])
                                      for m in sorted(rest.get(port, f"metric-data/{job['trialJobId']}"),
                                                      key=lambda m: m["sequence"])
                                      if m["type"] == "PERIODICAL"] for job in jobs}
        assert all(len(curve) == EPOCHS for curve in curves.values()), curves
        best = max(fitness, key=fitness.__getitem__)
        print(f"\nexperiment {exp.id} DONE after {time.monotonic() - started:.1f} s; fitness {fitness}")

        ui = f"http://127.0.0.1:{port}"
        with Browser(chromium) as browser:
            browser_started = time.monotonic()
            # overview: the experiment, its status and its best metric
            browser.goto(f"{ui}/oview")
            status = browser.wait_for("document.querySelector('.status-text') && "
                                      "document.querySelector('.status-text').innerText.trim()", timeout=30)
            assert status == "DONE"
            summary = browser.evaluate("document.body.innerText")
            assert exp.id in summary
            assert f"{fitness[best]:.6f}" in summary  # "Best metric", shown with 6 decimals

            # trials detail: one row per trial with its final "Default metric"
            browser.goto(f"{ui}/detail")
            browser.wait_for(f"{ROWS}.filter(r => (r.latestAccuracy || '').includes('FINAL')).length >= {len(jobs)}",
                             timeout=30)
            rows = browser.evaluate(ROWS)
            shown = {}
            for row in rows:
                trial_id = row["id"].split()[0]  # the cell also holds the copy icon's glyph
                match = re.fullmatch(r"(\S+) \(FINAL\)", row["latestAccuracy"])
                assert match, row
                shown[trial_id] = float(match.group(1))
                assert row["status"] == "SUCCEEDED", row
            assert shown.keys() == fitness.keys()
            for trial_id, value in shown.items():
                assert math.isclose(value, fitness[trial_id], abs_tol=1e-5), (trial_id, value, fitness[trial_id])
            columns = browser.evaluate("Array.from(document.querySelectorAll('.ms-DetailsHeader [role=columnheader]'))"
                                       ".map(c => c.innerText.trim())")
            assert "Default metric" in columns, columns

            # the "Intermediate result" tab draws every trial's per-epoch curve
            browser.click(INTERMEDIATE_TAB)
            browser.wait_for(f"{INTERMEDIATE_TAB}.getAttribute('aria-selected') === 'true'", timeout=10)
            panel_canvas = json.dumps("[role=tabpanel] .intermediate-graph canvas")
            browser.wait_for(f"{COLOURED_PIXELS % panel_canvas} > 500", timeout=15)
            assert "# Intermediate result" in browser.evaluate("document.querySelector('[role=tabpanel]').innerText")
            time.sleep(1.0)  # let ECharts finish its entry animation before the picture
            screenshot = browser.screenshot(tmp_path / "webui-detail.png")
            print(f"screenshot of the trials detail page: {screenshot}")

            # one trial's curve: its row's "Intermediate" button opens a chart of its 3 epochs
            browser.click(f"{row_of(best)}.querySelector('button[title=Intermediate]')")
            browser.wait_for("document.querySelector('[role=dialog]') && "
                             "document.querySelector('[role=dialog]').innerText.includes('Intermediate results')",
                             timeout=10)
            dialog_canvas = json.dumps("[role=dialog] .echarts-for-react canvas")
            browser.wait_for(f"{COLOURED_PIXELS % dialog_canvas} > 200", timeout=15)
            option = browser.evaluate(CHART_OPTION % json.dumps("[role=dialog] .echarts-for-react"))
            assert option is not None, "no chart option found behind the dialog's chart"
            assert option["legend"] == [best]
            assert [s["name"] for s in option["series"]] == [best]
            drawn = [float(v) for v in option["series"][0]["data"]]
            assert drawn == pytest.approx(curves[best], abs=1e-5)  # its 3 per-epoch values, in order
            time.sleep(1.0)
            modal = browser.screenshot(tmp_path / "webui-trial-intermediate.png")
            print(f"screenshot of trial {best}'s intermediate results: {modal}")
            print(f"browser checks took {time.monotonic() - browser_started:.1f} s")
    finally:
        exp.stop()
