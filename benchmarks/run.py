"""Run every benchmark (each ``benchmarks/<name>.py`` as its own subprocess, with a timeout) and print one table.

    python benchmarks/run.py [--json] [--quick] [NAME ...]

A benchmark that fails, times out or skips itself is listed with the reason; the exit status is 1 when any
benchmark failed or timed out, 0 otherwise (a missed target is reported, not an error: these are not tests).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

HERE = Path(__file__).resolve().parent
TIMEOUT_S = {"full": 1200, "quick": 300}
TERM_GRACE_S = 60  # after SIGTERM, time for a benchmark to clean up (cancel its Slurm jobs) before SIGKILL


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run.py")


def run_one(name: str, quick: bool, timeout_s: float) -> dict[str, Any]:
    argv = [sys.executable, str(HERE / f"{name}.py"), "--json"] + (["--quick"] if quick else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=c.REPO)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return {"benchmark": name, "results": [], "error": f"timed out after {timeout_s:g} s"}
    if proc.returncode != 0:
        tail = err.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {"benchmark": name, "results": [], "error": tail[0], "stderr": err[-4000:]}
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return {"benchmark": name, "results": [], "error": f"printed no JSON: {out[:200]!r}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help="a short run of each benchmark")
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    known = discover()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    timeout_s = TIMEOUT_S["quick" if args.quick else "full"]
    docs = []
    for name in args.names or known:
        if not args.json:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        docs.append(run_one(name, args.quick, timeout_s))
    info = c.machine()
    failed = [d for d in docs if d.get("error")]
    if args.json:
        print(json.dumps({"machine": info, "quick": args.quick, "benchmarks": docs}, indent=2))
    else:
        rows = []
        for d in docs:
            for row in c.result_rows(d.get("results", [])):
                rows.append([d["benchmark"], *row])
            if d.get("error") or d.get("skipped"):
                status = f"FAILED: {d['error']}" if d.get("error") else f"skipped: {d['skipped']}"
                rows.append([d["benchmark"], status, None, None, None, None, None, "", ""])
        print(f"machine: {c.describe_machine(info)}")
        print(c.table(("benchmark", *c.RESULT_HEADERS), rows))
        for d in failed:
            if d.get("stderr"):
                print(f"\n{d['benchmark']} stderr:\n{d['stderr']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
