"""Smoke runs of the benchmark scripts in bench/ at tiny sizes, plus their bookkeeping.

Each script's ``main(argv)`` runs with tiny arguments into ``tmp_path``; the test checks that its
JSON (with the expected keys), CSV and PNG outputs exist and are well formed. The real
measurements are run by hand (see docs/benchmarks.md); these only keep the scripts working.
"""

import csv
import json
from pathlib import Path

import pytest

from bench import b1_sample_efficiency as b1
from bench import b2_framework_efficiency as b2
from bench import b3_binarisation_cost as b3
from bench import b4_supernet_ranking as b4
from bench import b5_paper_claim as b5
from bench.common import ResultCache, drive_nni_tuner, format_table, spread
from nas_core.strategy import TrialResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The scripts set torch's thread count for their evaluations; give the next test the old one."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def outputs(folder: Path, stem: str, keys: set[str]) -> dict:
    """The JSON of a run (checked for ``keys``), after checking its CSV and PNG are well formed."""
    data = json.loads((folder / f"{stem}.json").read_text())
    assert keys <= set(data), keys - set(data)
    assert {"benchmark", "command", "date", "machine", "args"} <= set(data)
    assert data["command"].startswith(f"python bench/{stem}.py")
    assert data["machine"]["cpu"] and data["machine"]["logical_cpus"] >= 1
    with open(folder / f"{stem}.csv", newline="") as handle:
        assert list(csv.DictReader(handle)), "CSV has no rows"
    png = (folder / f"{stem}.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000
    return data


@pytest.mark.slow
def test_b1_smoke_and_rerun_from_cache(tmp_path, capsys):
    argv = ["--budget", "2", "--seeds", "0", "--epochs", "1", "--population", "2", "--threads", "1",
            "--subset-per-class", "10", "--strategies", "evolution", "nsga2", "nni_evolution", "nni_tpe",
            "--out", str(tmp_path), "--cache", str(tmp_path / "cache.json"), "--no-progress"]
    assert b1.main(argv) == 0
    data = outputs(tmp_path, "b1_sample_efficiency", {"summary", "checkpoints", "runs", "table"})
    assert data["checkpoints"] == [2]
    assert set(data["summary"]) == {"evolution", "nsga2", "nni_evolution", "nni_tpe"}
    assert all(len(run["candidates"]) == 2 and len(run["best_so_far"]) == 2 for run in data["runs"])
    assert data["trained_this_run"] >= 2
    assert "best after 2" in capsys.readouterr().out
    first = {name: entry["2"]["median"] for name, entry in data["summary"].items()}
    # a rerun is answered entirely by the cache and finds the same results
    assert b1.main(argv) == 0
    again = json.loads((tmp_path / "b1_sample_efficiency.json").read_text())
    assert again["trained_this_run"] == 0
    assert {name: entry["2"]["median"] for name, entry in again["summary"].items()} == first


@pytest.mark.slow
def test_b2_smoke_runs_a_real_nni_experiment(tmp_path):
    argv = ["--population", "2", "--generations", "1", "--max-trials", "2", "--epochs", "1", "--threads", "1",
            "--timeout", "120", "--work", str(tmp_path / "work"), "--out", str(tmp_path), "--no-progress"]
    assert b2.main(argv) == 0
    data = outputs(tmp_path, "b2_framework_efficiency", {"summary", "trials", "status", "experiment_wall_seconds"})
    assert data["status"] == "DONE"
    summary = data["summary"]
    assert summary["trials"] == 2 and summary["trials_without_metric"] == 0
    assert 0 < summary["efficiency"] <= 1
    assert all(t["evaluator_seconds"] > 0 and t["slot"] in (0, 1) for t in data["trials"])
    replay = summary["barrier_replay"]
    assert replay["generation_sizes"] == [2] and 0 < replay["as_asked"] <= replay["longest_first_exact"] <= 1


def test_b2_accounting_adds_up_to_the_slot_time():
    # slot 0 runs [0, 10] then [12, 20]; slot 1 runs [1, 11] then [11.5, 18]
    rows = [{"start": s, "end": e, "evaluator_seconds": c, "overhead": (e - s) - c}
            for s, e, c in [(0, 10, 8), (1, 11, 8), (11.5, 18, 5), (12, 20, 6)]]
    b2.assign_slots(rows, 2)
    assert [r["slot"] for r in rows] == [0, 1, 1, 0]
    assert rows[2]["gap_before"] == pytest.approx(0.5) and rows[3]["gap_before"] == pytest.approx(2.0)
    summary = b2.breakdown(rows, 2)
    parts = ["compute", "trial_overhead", "barrier_wait", "dispatch", "idle_at_ends"]
    assert sum(summary[p]["seconds"] for p in parts) == pytest.approx(summary["slot_seconds"]) == 40
    assert summary["efficiency"] == pytest.approx(27 / 40)
    # [12, 20] started 2 s after [0, 10] ended; [1, 11] ended 1 s into that gap: 1 s barrier, 1 s dispatch
    assert summary["barrier_wait"]["seconds"] == pytest.approx(1.0)
    assert summary["dispatch"]["seconds"] == pytest.approx(1.5)
    assert summary["per_trial"]["first_in_slot_overhead"] == [2.0, 2.0]


def test_b3_smoke(tmp_path):
    argv = ["--ratios", "1", "4", "--width-scale", "0.03125", "--batch-size", "4", "--reps", "2", "--warmup", "1",
            "--device", "cpu", "--threads", "1", "--out", str(tmp_path), "--no-progress"]
    assert b3.main(argv) == 0
    data = outputs(tmp_path, "b3_binarisation_cost", {"results", "device_name", "width_scale", "worst_slowdown"})
    assert [r["ratio"] for r in data["results"]] == [1.0, 4.0]
    for result in data["results"]:
        assert len(result["seconds"]["binary"]) == len(result["seconds"]["full_precision"]) == 2
        assert result["slowdown"] > 0
    assert data["device"] == "cpu" and data["device_name"]


@pytest.mark.slow
def test_b4_smoke(tmp_path):
    argv = ["--archs", "3", "--full-epochs", "2", "--epochs", "1", "--short-epochs", "1", "--supernet-epochs", "1",
            "--subset-per-class", "10", "--threads", "1", "--bootstrap", "20", "--out", str(tmp_path), "--no-progress"]
    assert b4.main(argv) == 0
    data = outputs(tmp_path, "b4_supernet_ranking", {"summary", "supernets", "architectures", "epochs"})
    assert len(data["architectures"]) == 3
    summary = data["summary"]
    assert set(summary["settings"]) == set(b4.PROXIES)
    for name, entry in summary["settings"].items():
        assert {"tau_fitness", "tau_fitness_ci95", "tau_accuracy", "speedup_vs_short", "target_met"} <= set(entry)
        assert (name in b4.SUPERNET_OF) == ("speedup_vs_short_amortised" in entry)
    # trained within this run's timed preparation, not read from an earlier run
    assert all(info["prepare_seconds"] >= info["train_seconds"] > 0 for info in data["supernets"].values())
    assert all(summary["seconds_per_candidate"][s] > 0 for s in b4.SETTINGS)
    assert data["summary"]["amortise_over"] == 1600


@pytest.mark.slow
def test_b5_smoke(tmp_path, capsys):
    argv = ["--budget", "4", "--population", "2", "--epochs", "1", "--retrain-epochs", "1", "--seeds", "0",
            "--uniform", "1", "4", "--threads", "1", "--subset-per-class", "10", "--out", str(tmp_path),
            "--cache", str(tmp_path / "cache.json"), "--retrain-dir", str(tmp_path / "retrain"), "--no-progress"]
    assert b5.main(argv) == 0
    data = outputs(tmp_path, "b5_paper_claim", {"models", "claims", "chosen", "search", "table"})
    assert {"Uniform-1×", "Uniform-4×", "Best fitness"} <= set(data["models"])
    assert set(data["claims"]) == {"Auto-A", "Auto-B"}
    assert all(v["holds"] in (True, False, None) for v in data["claims"].values())
    assert len(data["search"]) == 4
    assert (tmp_path / "b5_paper_claim.md").read_text().startswith("| Models | FLOPs | Speedup | Memory | Top-1 (%) |")
    out = capsys.readouterr().out
    assert "Auto-A:" in out and "Auto-B:" in out


def test_result_cache_survives_reopening_and_keeps_settings_apart(tmp_path):
    cache = ResultCache(tmp_path / "cache.json")
    ok = TrialResult.succeeded({"accuracy": 90.0}, 80.0)
    cache.put({"epochs": 1}, "a", ok)
    cache.put({"epochs": 1}, "b", TrialResult.failed("diverged"))  # failures are not memoised
    reopened = ResultCache(tmp_path / "cache.json")
    assert reopened.get({"epochs": 1}, "a") == ok
    assert reopened.get({"epochs": 1}, "b") is None and reopened.get({"epochs": 2}, "a") is None
    other = ResultCache(tmp_path / "cache.json")  # two writers: neither loses the other's entries
    cache.put({"epochs": 2}, "a", ok)
    other.put({"epochs": 1}, "c", ok)
    assert ResultCache(tmp_path / "cache.json").size() == 3


def test_helpers():
    assert b1.best_so_far([None, 3.0, 1.0, 5.0]) == [None, 3.0, 3.0, 5.0]
    assert b1.checkpoints_for(64) == [16, 32, 64] and b1.checkpoints_for(40) == [16, 32, 40]
    assert spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert format_table(["a", "b"], [["x", 1]]).splitlines()[2] == "x  1"


class _LateTuner:
    """A tuner that answers request 0 at once, request 1 with nothing (its answer was already sent through
    ``st_callback`` when trial 0 ended, as NNI's Evolution sends held requests), and then has no more."""

    def __init__(self) -> None:
        self.callback = None
        self.calls: list[tuple] = []

    def generate_multiple_parameters(self, ids, st_callback=None):
        import nni

        self.callback = st_callback
        if ids[0] == 0:
            return [{"x": 0}]
        if ids[0] == 1:
            return []
        raise nni.NoMoreTrialError("no more")

    def receive_trial_result(self, parameter_id, params, value, **kwargs):
        self.calls.append(("result", parameter_id, params, value))

    def trial_end(self, parameter_id, success):
        self.calls.append(("end", parameter_id, success))
        if parameter_id == 0:
            self.callback(7, {"x": 7})


def test_drive_nni_tuner_runs_late_parameters_reports_successes_and_stops_when_the_tuner_has_none():
    tuner = _LateTuner()
    ran = []

    def run_trial(params):
        ran.append(params)
        return None if params["x"] == 7 else {"default": float(params["x"])}

    assert drive_nni_tuner(tuner, 10, run_trial) == 2  # 0 at once, 7 sent late in place of 1, then none
    assert ran == [{"x": 0}, {"x": 7}]
    assert tuner.calls == [("result", 0, {"x": 0}, {"default": 0.0}), ("end", 0, True), ("end", 7, False)]
    assert drive_nni_tuner(_LateTuner(), 1, run_trial) == 1  # the budget counts trials


def test_b2_flags_rewrite_the_copied_job(tmp_path):
    args = b2.parse_args(["--worker", "off", "--population", "2", "--max-trials", "3"])
    _, config = b2.prepare_job(args, tmp_path / "job")
    assert config["tuner"]["classArgs"]["strategy_args"]["population_size"] == 2
    assert config["trialCommand"].endswith("--worker off") and config["maxTrialNumber"] == 3
    written = (tmp_path / "job" / "config.yml").read_text()
    assert "--worker off" in written and "population_size: 2" in written


def test_b2_strategy_flags_replace_or_extend_the_strategy_arguments(tmp_path):
    args = b2.parse_args(["--strategy-args", '{"elitism": 2}', "--manager-poll", "nni"])
    _, config = b2.prepare_job(args, tmp_path / "job")
    class_args = config["tuner"]["classArgs"]
    assert class_args["strategy"] == "evolution" and args.manager_poll is None
    assert class_args["strategy_args"] == {"population_size": 8, "generations": 8, "elitism": 2}
    args = b2.parse_args(["--strategy", "regularized_evolution", "--strategy-args", '{"population_size": 8}'])
    _, config = b2.prepare_job(args, tmp_path / "job")
    assert config["tuner"]["classArgs"]["strategy"] == "regularized_evolution"
    assert config["tuner"]["classArgs"]["strategy_args"] == {"population_size": 8}
    for bad in (["--strategy-args", "[1]"], ["--strategy-args", "{"], ["--manager-poll", "2"]):
        with pytest.raises(SystemExit):
            b2.parse_args(bad)


def test_b2_barrier_replay_separates_the_barrier_from_the_order():
    generations = [[3.0, 1.0, 1.0, 3.0], [2.0]]  # a long trial asked last, then a lone trial
    replay = b2.barrier_replay(generations, 2)
    assert replay["as_asked"] == pytest.approx(10.0 / (2 * (5.0 + 2.0)))
    assert replay["longest_first_exact"] == pytest.approx(10.0 / (2 * (4.0 + 2.0)))
    replay = b2.barrier_replay([[1.0, 1.0, 3.0]], 2)
    assert replay["as_asked"] == pytest.approx(5.0 / (2 * 4.0))
    assert replay["longest_first_exact"] == pytest.approx(5.0 / (2 * 3.0))
    assert replay["generation_sizes"] == [3]
    assert b2.barrier_replay([[]], 2) is None


def test_b2_a_barrier_released_by_a_result_just_before_its_process_ends_counts_as_barrier():
    # slot 0 idles from 5 to 9; slot 1's trial reports at ~8.99 and its process ends at 9.01, after
    # slot 0's next trial started at 9.0: the wait was the barrier's, not NNI's dispatch
    rows = [{"start": s, "end": e, "evaluator_seconds": e - s, "overhead": 0.0}
            for s, e in [(0, 5), (0.1, 9.01), (9.0, 12), (9.05, 12)]]
    b2.assign_slots(rows, 2)
    summary = b2.breakdown(rows, 2)
    assert summary["barrier_wait"]["seconds"] == pytest.approx(4.0)
    assert summary["dispatch"]["seconds"] == pytest.approx(0.04)
