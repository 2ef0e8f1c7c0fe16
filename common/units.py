"""Durations and byte sizes as people write them, parsed and formatted in one place.

Durations follow the forms batch schedulers accept (`mm`, `mm:ss`, `hh:mm:ss`, `D-hh`,
`D-hh:mm`, `D-hh:mm:ss`); the canonical form is `DD-hh:mm:ss`. Byte sizes are a plain count
or a number with a binary suffix (`512M`, `1.5G`, `80GiB`).
"""

import re

DURATION_FORMS = "DD-hh:mm:ss (or hh:mm:ss, mm:ss, mm, D-hh, D-hh:mm)"
BYTES_FORMS = "a number of bytes or a number with K, M, G or T (e.g. 512M, 1.5G, 80GiB)"

# Compiled on first use (re keeps them), not at import: most commands parse none of them.
_WITH_DAYS = r"([0-9]+)-([0-9]+)(?::([0-9]+)(?::([0-9]+))?)?"
_WITHOUT_DAYS = r"([0-9]+)(?::([0-9]+)(?::([0-9]+))?)?"
_BYTES = r"([0-9]+(?:\.[0-9]+)?)(?:([KMGT])(?:i?B)?)?"

_SECONDS_PER_MINUTE = 60
_SECONDS_PER_HOUR = 3600
_SECONDS_PER_DAY = 86400
_MULTIPLIERS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def parse_duration(text: str) -> int:
    """Return the number of seconds `text` stands for; refuse zero and anything malformed."""
    fields = _duration_fields(text)
    if fields is None:
        raise ValueError(f"expected {DURATION_FORMS}, got {text!r}")
    days, hours, minutes, seconds = fields

    # A field is bounded only when a larger unit precedes it: `90` minutes or `36:00:00`
    # hours are fine, but `1:75:00` or `1-30` are typing mistakes.
    if seconds > 59:
        raise ValueError(f"seconds must be 0-59 in {text!r}")
    if (hours is not None or days is not None) and minutes > 59:
        raise ValueError(f"minutes must be 0-59 in {text!r}")
    if days is not None and hours is not None and hours > 23:
        raise ValueError(f"hours must be 0-23 when days are given in {text!r}")

    total_s = (
        (days or 0) * _SECONDS_PER_DAY
        + (hours or 0) * _SECONDS_PER_HOUR
        + minutes * _SECONDS_PER_MINUTE
        + seconds
    )
    if total_s == 0:
        raise ValueError(f"a duration must be longer than zero, got {text!r}")
    return total_s


def _duration_fields(text: str) -> tuple[int | None, int | None, int, int] | None:
    """Split `text` into (days, hours, minutes, seconds); None when it fits no form."""
    match = re.fullmatch(_WITH_DAYS, text)
    if match is not None:
        days, hours, minutes, seconds = (_to_int(group) for group in match.groups())
        return days, hours, minutes or 0, seconds or 0

    match = re.fullmatch(_WITHOUT_DAYS, text)
    if match is None:
        return None
    first, second, third = (_to_int(group) for group in match.groups())
    if third is not None:
        return None, first, second or 0, third
    if second is not None:
        return None, None, first or 0, second
    return None, None, first or 0, 0


def _to_int(group: str | None) -> int | None:
    return None if group is None else int(group)


def parse_limit(text: str) -> int | None:
    """Like `parse_duration`, but `none` (any case) means no limit and returns None."""
    if text.lower() == "none":
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ValueError(f"{error}; use 'none' to remove the limit") from None


def format_duration(seconds: int) -> str:
    """Write `seconds` in the canonical `DD-hh:mm:ss` form, e.g. `03-00:00:00`."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds}")
    days, rest_s = divmod(seconds, _SECONDS_PER_DAY)
    hours, rest_s = divmod(rest_s, _SECONDS_PER_HOUR)
    minutes, secs = divmod(rest_s, _SECONDS_PER_MINUTE)
    return f"{days:02d}-{hours:02d}:{minutes:02d}:{secs:02d}"


def parse_bytes(text: str) -> int:
    """Return the number of bytes `text` stands for; suffixes are binary (1K = 1024)."""
    match = re.fullmatch(_BYTES, text, re.IGNORECASE | re.ASCII)
    if match is None:
        raise ValueError(f"expected {BYTES_FORMS}, got {text!r}")
    number, suffix = match.groups()
    if suffix is None and "." in number:
        raise ValueError(f"a plain number of bytes must be whole, got {text!r}")

    multiplier = 1 if suffix is None else _MULTIPLIERS[suffix.upper()]
    from fractions import Fraction  # here: a command that reads no size need not import it

    count_bytes = int(Fraction(number) * multiplier)
    if count_bytes == 0:
        raise ValueError(f"a size must be at least one byte, got {text!r}")
    return count_bytes


def format_bytes(count_bytes: int) -> str:
    """Write a size for people to read, e.g. `1.9 GiB`; not exact, use `format_bytes_exact`
    where the text will be parsed back."""
    if count_bytes < 1024:
        return f"{count_bytes} B"
    value = float(count_bytes)
    unit_index = 0
    while value >= 1024 and unit_index < len(_BINARY_UNITS) - 1:
        value /= 1024
        unit_index += 1
    return f"{value:.1f} {_BINARY_UNITS[unit_index]}"


def format_bytes_exact(count_bytes: int) -> str:
    """Write a size with the largest suffix that keeps it exact (`80G`, `1536M`, `1000`),
    so that `parse_bytes` gives the same number back."""
    for suffix in ("T", "G", "M", "K"):
        multiplier = _MULTIPLIERS[suffix]
        if count_bytes >= multiplier and count_bytes % multiplier == 0:
            return f"{count_bytes // multiplier}{suffix}"
    return str(count_bytes)
