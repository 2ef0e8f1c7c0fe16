"""Test-only fault points: the process ends at once, as a crash would, at a named step.

`CAPTAIN_FAULT=NAME` (or `NAME:N`, the Nth time the step is reached) makes the process call
`os._exit` there: no cleanup, no flush, the open files left as they are. Unset, a fault
point costs one comparison. The points are:

- `after-write-before-fsync`: a batch of events is written to the segment, not yet synced;
- `torn-write`: only the first half of a batch's bytes are written;
- `snapshot-before-rename`: a snapshot's temp file is written and synced, not yet renamed.
"""

import os

FAULT_EXIT_CODE = 86

_name, _, _count = os.environ.get("CAPTAIN_FAULT", "").partition(":")
_left = int(_count) if _count.isdecimal() else 1


def armed(name: str) -> bool:
    """True when the process is to stop at this point now (counts the visits)."""
    global _left
    if name != _name:
        return False
    _left -= 1
    return _left <= 0


def crash() -> None:
    os._exit(FAULT_EXIT_CODE)
