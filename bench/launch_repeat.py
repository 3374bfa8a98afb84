"""Repeated launches: does NNI's own start ever fail under our launcher at high trial concurrency?

    python bench/launch_repeat.py                       # 5 launches at trialConcurrency 8
    python bench/launch_repeat.py --launches 2 --concurrency 2 --out /tmp/lr   # smoke

Each launch runs ``python -m nas_core search`` (as a user would) on a copy of the digits example
with ``trialConcurrency`` trials at once, one generation of that many candidates and one epoch, and
records its exit status, the experiment's end state, how long it took, and whether NNI's launch
error ("Create experiment failed", seen while pre-started workers imported torch during NNI's
boot) appeared. Writes ``launch_repeat.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from bench.common import REPO, RESULTS, WORK, header, write_json

LAUNCH_ERROR = "Create experiment failed"


def prepare(folder: Path, concurrency: int) -> Path:
    """A copy of the digits example: ``concurrency`` trials at once, one generation, one epoch."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(REPO / "examples" / "digits", folder)
    config_path = folder / "config.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["trialConcurrency"] = concurrency
    config["maxTrialNumber"] = concurrency
    config["tuner"]["classArgs"]["strategy_args"] = {"population_size": concurrency, "generations": 1}
    config["experimentWorkingDirectory"] = str((folder.parent / "experiments").resolve())
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    args_file = folder / "evaluator.yml"
    evaluator_args = yaml.safe_load(args_file.read_text(encoding="utf-8")) or {}
    evaluator_args["epochs"] = 1
    args_file.write_text(yaml.safe_dump(evaluator_args, sort_keys=False), encoding="utf-8")
    return config_path


def launch(config_path: Path, timeout: float) -> dict[str, object]:
    started = time.monotonic()
    load_before = os.getloadavg()
    done = subprocess.run([sys.executable, "-m", "nas_core", "search", str(config_path), "--no-progress",
                           "--port", "8700", "--timeout", str(timeout)],
                          capture_output=True, text=True, timeout=timeout + 120, cwd=REPO)
    output = done.stdout + done.stderr
    status = re.search(r"experiment \w+ (DONE|ERROR|STOPPED|TIMEOUT)", output)
    return {"exit_status": done.returncode, "seconds": time.monotonic() - started,
            "launch_error": LAUNCH_ERROR in output, "end": status.group(1) if status else None,
            "load_average_before": list(load_before), "tail": output.strip().splitlines()[-3:]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per launch")
    parser.add_argument("--work", type=Path, default=WORK / "launch_repeat")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    meta = header("launches at high trial concurrency", "launch_repeat.py", argv, args)
    runs = []
    for number in range(args.launches):
        work = args.work.resolve()
        if work.exists():
            shutil.rmtree(work)
        run = launch(prepare(work / "job", args.concurrency), args.timeout)
        runs.append(run)
        print(f"launch {number + 1}/{args.launches}: exit {run['exit_status']}, end {run['end']}, "
              f"{run['seconds']:.0f} s, NNI launch error: {run['launch_error']}", flush=True)
    failed = sum(1 for run in runs if run["exit_status"] != 0 or run["launch_error"])
    print(f"{len(runs) - failed} of {len(runs)} launches at trialConcurrency {args.concurrency} reached DONE "
          f"without NNI's launch error")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "launch_repeat.json", {**meta, "runs": runs, "failed": failed})
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
