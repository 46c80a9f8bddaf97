"""Run the atheris targets: `python -m tests.fuzz.run [--runs N | --seconds S] [NAME ...]`.

Each target runs in its own process with a scratch corpus directory (where libFuzzer writes
what it finds) and its committed seeds under ``tests/fuzz/corpus/NAME/`` (read only, so a run
never changes the tree). One JSON line per target: its executions, the time taken and whether
it crashed; the exit status is non-zero if any did. A crash's input is left in the scratch
directory named on the line.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = ("format", "signature", "digest", "metadata", "csv_import")
CORPUS = Path(__file__).parent / "corpus"
# libFuzzer's final statistics (-print_final_stats=1); atheris' own "Done N in T second(s)";
# the last status line, if a run was cut short.
_COUNTS = (
    re.compile(r"stat::number_of_executed_units:\s*(\d+)"),
    re.compile(r"Done (\d+) in "),
    re.compile(r"#(\d+)\s"),
)


def run(name: str, *, runs: int | None, seconds: int | None, scratch: Path) -> dict[str, object]:
    work = scratch / name
    work.mkdir(parents=True, exist_ok=True)
    flags = [f"-artifact_prefix={work}/", "-print_final_stats=1"]
    if runs is not None:
        flags.append(f"-atheris_runs={runs}")
    if seconds is not None:
        flags.append(f"-max_total_time={seconds}")
    argv = [sys.executable, "-m", f"tests.fuzz.fuzz_{name}", *flags, str(work), str(CORPUS / name)]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False)
    output = done.stdout + done.stderr
    executions = 0
    for pattern in _COUNTS:
        found = pattern.findall(output)
        if found:
            executions = int(found[-1])
            break
    result: dict[str, object] = {
        "metric": "fuzz_executions",
        "target": name,
        "value": executions,
        "seconds": round(time.monotonic() - started, 1),
        "crashed": done.returncode != 0,
    }
    if done.returncode != 0:
        result["artifacts"] = str(work)
        sys.stderr.write(output[-6000:])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--runs", type=int)
    parser.add_argument("--seconds", type=int)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="carevault-fuzz-") as scratch:
        for name in args.targets:
            result = run(name, runs=args.runs, seconds=args.seconds, scratch=Path(scratch))
            print(json.dumps(result), flush=True)
            failed = failed or bool(result["crashed"])
            if result["crashed"]:
                # Keep the crashing input: copy it out of the scratch directory.
                keep = Path(tempfile.mkdtemp(prefix=f"carevault-fuzz-{name}-crash-"))
                for path in Path(scratch, name).glob("crash-*"):
                    (keep / path.name).write_bytes(path.read_bytes())
                print(json.dumps({"target": name, "crash_inputs": str(keep)}), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
