#!/bin/bash
# The crash tests, longer than CI runs them: the captain killed ROUNDS times (default 30) at
# random moments under a workload, then every fault point, REPEAT times (default 5).
# Usage: tests/stress_log.sh [ROUNDS] [REPEAT]   (as root, with the test environment built by
# tests/run; CAPTAIN_TEST_ENV picks another one)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-30}
repeat=${2:-5}
python=${CAPTAIN_TEST_ENV:-/tmp/captain-testenv}/bin/python
CAPTAIN_STRESS_ROUNDS=$rounds "$python" -m pytest -p no:cacheprovider -q -o timeout=0 \
  tests/test_crash_safety.py
for ((i = 1; i <= repeat; i++)); do
  echo "stress_log: fault points, run $i of $repeat"
  "$python" -m pytest -p no:cacheprovider -q -k "fault_point or full_disk" \
    tests/test_log_durability.py
done
