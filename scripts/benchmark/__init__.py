"""The benchmark of scripts/bench: one tenant's real stack, seeded, driven with wrk, reported.

cli (the command line), run (one run, from a fresh cluster to the results), seed (the tenant's
data), scenarios (the requests measured), load (wrk), procfs (processes, memory and CPU as /proc
tells them), machine (what the run ran on), api (requests outside wrk), profiling (--profile),
archive (--archive), targets (those of issues 5, 13 and 14), report (the table and `compare`).
"""

import sys

from tenancy import ROOT

STATE = ROOT / ".local" / "bench"
# The seed hashes the users' password, and the deep page's cursor is encoded, with the service's own code.
sys.path.insert(0, str(ROOT))
