"""What scripts/bench runs: the benchmark's command line (scripts/benchmark/cli.py has its usage)."""

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
