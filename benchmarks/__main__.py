"""`python -m benchmarks [name ...]`: run the benchmarks, print them, write results and table."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import asdict

from .harness import ROOT, Result, write


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in ROOT.glob("bench_*.py"))
    chosen = [n for n in names if not argv or any(a in n for a in argv)]
    results: list[Result] = []
    for name in chosen:
        print(f"== {name}", flush=True)
        for result in importlib.import_module(f"benchmarks.{name}").run():
            print(json.dumps(asdict(result)), flush=True)
            results.append(result)
    write(results)
    for r in results:
        print(f"{r.name}: ratio {r.ratio:.3f} (goal {r.goal}) {'met' if r.met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
