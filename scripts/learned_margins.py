"""Run the tests of learned results (``pytest -m learned``) with several seeds and print how
far each figure stays from its threshold.

float32 results differ between CPUs (oneDNN picks other kernels on AMD than on Intel, with
or without AMX), so a learned result must hold with a clear margin, not just with the one
seed and the one CPU its author tried. Each run shifts every seed of those tests by
``NAPARI_UNET_TEST_SEED`` (tests/helpers.py: ``seeded``); ``--no-onednn`` adds runs with
TensorFlow's oneDNN kernels switched off, another float path on the same machine.

Usage: .venv/bin/python scripts/learned_margins.py [--seeds 0 1 2] [--no-onednn] [-k EXPR]
       [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(seed: int, onednn: bool, out: Path, keyword: str | None, workers: int) -> int:
    env = dict(os.environ, NAPARI_UNET_TEST_SEED=str(seed), NAPARI_UNET_MARGINS=str(out))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not onednn:
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    cmd = [sys.executable, "-m", "pytest", "-m", "learned", "-q", "-p", "no:cacheprovider"]
    if keyword:
        cmd += ["-k", keyword]
    if workers:  # a test file to a process (pytest-xdist), as scripts/test.sh runs them
        cmd += ["-n", str(workers), "--dist", "loadfile"]
    print(f"--- seed offset {seed}, oneDNN {'on' if onednn else 'off'}", flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-onednn", action="store_true", help="also run with oneDNN off")
    parser.add_argument("-k", dest="keyword", help="only the tests pytest -k selects")
    parser.add_argument(
        "--workers", type=int, default=2, help="pytest processes per run (0: one, no xdist)"
    )
    args = parser.parse_args()
    variants = [(s, True) for s in args.seeds]
    if args.no_onednn:
        variants += [(s, False) for s in args.seeds]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        figures: dict[tuple[str, str, float], list[tuple[str, float]]] = defaultdict(list)
        for seed, onednn in variants:
            out = Path(tmp) / f"{seed}-{int(onednn)}.jsonl"
            failed += run(seed, onednn, out, args.keyword, args.workers) != 0
            if out.exists():
                for line in out.read_text().splitlines():
                    r = json.loads(line)
                    key = (r["test"].split("::")[-1], r["name"], r["threshold"])
                    figures[key].append((f"{seed}{'' if onednn else '*'}", r["value"]))
    print("\n| test | figure | threshold | values (seed offset; * oneDNN off) | smallest margin |")
    print("| --- | --- | --- | --- | --- |")
    for (test, name, threshold), values in figures.items():
        shown = ", ".join(f"{v:.3f} ({s})" for s, v in values)
        worst = min(v for _, v in values) - threshold
        print(f"| {test} | {name} | {threshold:g} | {shown} | {worst:+.3f} |")
    print(f"\n{failed} of {len(variants)} runs failed" if failed else "\nall runs passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
