"""`make bench`: run every benchmark and print a Markdown table of rates and ratios to baselines."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from benchmarks import (
    bench_bias,
    bench_merge,
    bench_ope,
    bench_process,
    bench_schema,
    bench_service,
    bench_sim,
    bench_store,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000, help="rows per benchmark")
    parser.add_argument(
        "--process-decisions", type=int, default=1_000_000, help="decisions of the `process` benchmark"
    )
    args = parser.parse_args()
    print(f"# revealed benchmarks ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}; "
        f"command: `make bench` (python -m benchmarks --n {args.n} "
        f"--process-decisions {args.process_decisions})\n"
    )
    print("| benchmark | revealed | baseline (same run) | ratio | aim |")
    print("|---|---|---|---|---|")
    for module in (bench_schema, bench_store, bench_merge, bench_service, bench_sim, bench_bias, bench_ope):
        for result in module.run(args.n):
            print(result.row())
            sys.stdout.flush()
    for result in bench_process.run(args.n, decisions=args.process_decisions):
        print(result.row())


if __name__ == "__main__":
    main()
