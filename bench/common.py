"""Helpers shared by the benchmark scripts ``bench/b1_*.py`` … ``bench/b5_*.py``.

Every benchmark prints a table, writes its raw results (JSON, and CSV where rows are flat) and a
figure (PNG) into one output folder, and records how it was made: the command line, the date and
the machine (CPU model, cores, GPU, load average, library versions, git commit). This module holds
that common part so the scripts only hold what they measure:

* :func:`machine` — a description of the machine, for the JSON and for docs/benchmarks.md;
* :func:`write_json` / :func:`write_csv` — crash-safe output files (JSON written atomically);
* :func:`format_table` — a plain-text table for the console;
* :func:`spread` — median and range of a few values (benchmarks repeat over seeds);
* :class:`ResultCache` and :class:`MemoScorer` — evaluations memoised on disk on the architecture
  key: fitness is deterministic for one architecture and evaluator setting, so reruns and
  candidates shared between strategies cost nothing, and an interrupted run loses nothing;
* :func:`progress_bar`, :func:`pyplot` — tqdm and a headless matplotlib.

The scripts run as files (``python bench/bN_....py``: each puts the repository root on
``sys.path`` before importing this module as ``bench.common``) and as modules of the namespace
package ``bench`` (``python -m bench.bN_...``; the tests import them and call ``main(argv)``).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nas_core.evaluator import Evaluator
from nas_core.runner import evaluator_score
from nas_core.space import Architecture
from nas_core.state_io import read_json, write_json_atomic
from nas_core.strategy import TrialResult

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
"""Default output folder of every benchmark."""
WORK = Path(os.environ.get("NAS_CORE_CACHE", Path.home() / ".cache" / "nas_core")) / "bench"
"""Default folder for bulky intermediate files (NNI experiment folders, retraining checkpoints)."""


# ------------------------------------------------------------------------------ provenance


def now_utc() -> str:
    """The current date and time in UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    """Where a benchmark ran: CPU, cores, GPU, load, versions and the code's git commit.

    The load average is included because other work on the machine changes absolute times
    (ratios measured side by side in one run are what the benchmarks report).
    """
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError, AttributeError):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # torch missing or CUDA broken: the description is still useful
        info["gpus"] = []
    with contextlib.suppress(Exception):
        import nni

        info["nni"] = nni.__version__
    commit = _git("rev-parse", "--short", "HEAD")
    if commit:
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        info["git_commit"] = commit + ("-dirty" if dirty else "")
    return info


def device_name(device: str) -> str:
    """A torch device in words: the GPU's name, or the CPU model with the threads torch uses."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The shell command that reproduces a run (``python bench/<script> <args>``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(shlex.quote(a) for a in ["python", f"bench/{script}", *args])


def header(benchmark: str, script: str, argv: Sequence[str] | None, args: Any) -> dict[str, Any]:
    """The provenance block every result JSON starts with."""
    return {
        "benchmark": benchmark,
        "command": command_line(script, argv),
        "date": now_utc(),
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


# ---------------------------------------------------------------------------------- output


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _finite(value.item())
    return value


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as JSON atomically (NaN/inf become null), readable like any new file."""
    write_json_atomic(path, _finite(data))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # the atomic writer's temporary file is private (0600)
    return Path(path)


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]],
              fieldnames: Sequence[str] | None = None) -> Path:
    """Write flat rows as CSV; columns are ``fieldnames`` or every key in first-seen order."""
    if fieldnames is None:
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        fieldnames = list(names)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in fieldnames})
    os.replace(tmp, target)
    return target


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def format_table(header_row: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A plain-text table; ``align`` has one ``l`` or ``r`` per column (default: first left)."""
    cells = [[str(c) for c in header_row]] + [[("—" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header_row))]
    align = align or ("l" + "r" * (len(header_row) - 1))
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def spread(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Median, minimum and maximum of the values that are not None (None when there are none)."""
    kept = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not kept:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(kept), "min": min(kept), "max": max(kept), "n": len(kept)}


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (0 for a single value; None for none)."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None, None
    return statistics.fmean(kept), (statistics.stdev(kept) if len(kept) > 1 else 0.0)


@contextlib.contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["seconds"]`` is the elapsed wall time."""
    timing = {"seconds": 0.0}
    started = time.perf_counter()
    try:
        yield timing
    finally:
        timing["seconds"] = time.perf_counter() - started


def progress_bar(total: int, desc: str, *, enabled: bool, unit: str = "it") -> Any:
    """A tqdm bar on stderr, or None when progress is off (tests, redirected runs)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Save a figure as PNG (written to a temporary name, then renamed) and close it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    os.replace(tmp, target)
    return target


# ------------------------------------------------------------------------------ memoising


def evaluator_setting(evaluator: Evaluator) -> dict[str, Any]:
    """Everything that changes a ``binary_width`` evaluator's result for a given architecture.

    Thread count is left out (it changes speed, not the result); the device is kept (GPU and CPU
    arithmetic differ slightly). Other evaluators are identified by class and objective only.
    """
    setting: dict[str, Any] = {"evaluator": f"{type(evaluator).__module__}:{type(evaluator).__qualname__}",
                               "objective": evaluator.objective.describe()}
    for name in ("backbone", "dataset", "data_dir", "width_scale", "image_size", "subset_per_class", "val_size",
                 "seed", "supernet", "device_name"):
        if hasattr(evaluator, name):
            setting[name] = getattr(evaluator, name)
    if getattr(evaluator, "supernet", False):
        setting["supernet_epochs"] = getattr(evaluator, "supernet_epochs", None)
        if getattr(evaluator, "supernet_training", "widest") != "widest":
            setting["supernet_training"] = evaluator.supernet_training
        if getattr(evaluator, "supernet_bn", "inherit") != "inherit":  # results of "inherit" keep their old key
            setting["supernet_bn"] = evaluator.supernet_bn
    config = getattr(evaluator, "train_config", None)
    if config is not None and hasattr(config, "to_json"):
        setting["train"] = config.to_json()
    space = evaluator.search_space()
    if space is not None:
        setting["space"] = space.to_nni()
    return setting


def setting_id(setting: Mapping[str, Any]) -> str:
    """A short stable hash of a setting (the cache's section name)."""
    return hashlib.sha1(json.dumps(setting, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ResultCache:
    """Successful evaluation results in one JSON file, by evaluator setting and architecture key.

    The file is rewritten atomically after every new result, under a file lock and merged with
    what is on disk, so two benchmarks sharing a cache file never lose each other's entries and
    a run killed at any moment keeps every finished evaluation. Failed results are not stored:
    a failure may come from the machine (memory, a signal) rather than the architecture.
    """

    VERSION = 1

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._sections: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            data = read_json(self.path)
        except (OSError, ValueError) as err:
            raise ValueError(f"{self.path}: not a readable result cache ({err}); move it away to start afresh") from None
        if not isinstance(data, dict) or data.get("version") != self.VERSION:
            raise ValueError(f"{self.path}: not a result cache of version {self.VERSION}")
        return dict(data.get("settings", {}))

    def get(self, setting: Mapping[str, Any], key: str) -> TrialResult | None:
        entry = self._sections.get(setting_id(setting), {}).get("results", {}).get(key)
        return None if entry is None else TrialResult.from_json(entry)

    def put(self, setting: Mapping[str, Any], key: str, result: TrialResult) -> None:
        if not result.ok:
            return
        sid = setting_id(setting)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                sections = self._read()
                section = sections.setdefault(sid, {"setting": _finite(dict(setting)), "results": {}})
                section["results"][key] = result.to_json()
                write_json_atomic(self.path, {"version": self.VERSION, "settings": sections})
                self._sections = sections
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def size(self, setting: Mapping[str, Any] | None = None) -> int:
        if setting is None:
            return sum(len(s.get("results", {})) for s in self._sections.values())
        return len(self._sections.get(setting_id(setting), {}).get("results", {}))


@dataclass
class Call:
    """One scoring request: the architecture, its result and whether the cache answered it."""

    arch: Architecture
    result: TrialResult
    cached: bool
    seconds: float
    """Wall time of this request (about 0 for a cache hit)."""


@dataclass
class MemoScorer:
    """A scoring function (``arch -> TrialResult``) that trains only what the cache lacks.

    ``calls`` lists every request in order; ``on_call`` (if set) is told each one as it happens,
    for progress bars. ``metrics["evaluator_seconds"]`` of a result is the compute time of the
    evaluation that produced it, also when it comes from the cache.
    """

    evaluator: Evaluator
    cache: ResultCache | None = None
    on_call: Callable[[Call], None] | None = None
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.setting = evaluator_setting(self.evaluator)
        self._score = evaluator_score(self.evaluator)
        space = self.evaluator.search_space()
        if space is None:
            raise ValueError("MemoScorer needs an evaluator that knows its search space (for architecture keys)")
        self.space = space

    def __call__(self, arch: Architecture) -> TrialResult:
        key = self.space.key(arch)
        started = time.perf_counter()
        cached = self.cache.get(self.setting, key) if self.cache is not None else None
        if cached is not None:
            result, hit = cached, True
        else:
            result, hit = self._score(arch), False
            if self.cache is not None:
                self.cache.put(self.setting, key, result)
        call = Call(self.space.validate(arch), result, hit, time.perf_counter() - started)
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        return result

    @property
    def trained(self) -> int:
        """Requests that trained a network (cache misses)."""
        return sum(not c.cached for c in self.calls)


# ------------------------------------------------------------------------------ NNI's tuners in process


NniTrial = Callable[[Any], "Mapping[str, float] | None"]
"""Runs one trial on a tuner's parameters: the metrics to report (NNI's ``default`` first), or None if it failed."""


def drive_nni_tuner(tuner: Any, budget: int, run_trial: NniTrial) -> int:
    """Drive an NNI tuner in process as NNI's dispatcher does, one trial at a time, up to ``budget`` trials.

    Each trial asks ``generate_multiple_parameters`` for one parameter id. A tuner may answer with
    nothing (or raise ``NoMoreTrialError``) and send parameters later through ``st_callback`` (NNI's
    Evolution and TPE do while results are outstanding); those are queued and run in the order sent.
    A success is reported with ``receive_trial_result``; every trial then ends with ``trial_end``. A
    failed trial's result is not given to the tuner, as NNI does for a FAILED trial. The run ends early
    when the tuner has nothing to propose. Returns the number of trials run.
    """
    import nni

    late: list[tuple[int, Any]] = []  # parameters sent later through st_callback

    def callback(parameter_id: int, params: Any, **_: Any) -> None:
        late.append((parameter_id, params))

    trials = 0
    for parameter_id in range(budget):
        try:
            proposed = tuner.generate_multiple_parameters([parameter_id], st_callback=callback)
        except nni.NoMoreTrialError:
            proposed = []
        if proposed:
            params = proposed[0]
        elif late:
            parameter_id, params = late.pop(0)
        else:
            break
        value = run_trial(params)
        if value is not None:
            tuner.receive_trial_result(parameter_id, params, dict(value), customized=False, trial_job_id=None)
        tuner.trial_end(parameter_id, value is not None)
        trials += 1
    return trials
