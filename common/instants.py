"""Instants people type: ISO 8601 times (local time unless they say otherwise) or epoch seconds."""

import datetime
import re

_EPOCH = re.compile(r"^[0-9]{1,12}(\.[0-9]+)?$")


def parse_instant(text: str) -> float:
    """Epoch seconds of `1733250000`, `2026-12-03T19:22:01`, `2026-12-03 19:22` or with a zone.

    Raises ValueError with a message saying what is accepted.
    """
    text = text.strip()
    if _EPOCH.match(text):
        return float(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text}' is neither an ISO time (2026-12-03T19:22:01) nor epoch "
                         "seconds") from None
    return moment.timestamp()
