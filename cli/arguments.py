"""The `key=value` words of the CLI, checked and turned into endpoint bodies."""

from __future__ import annotations

import os
import re

from common.units import parse_bytes, parse_limit

# `typing` is imported for the type checker only: the command's start-up pays every import.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHORE_KEYS = ("script", "service", "sailor", "cpus", "gpus", "vram", "ram")
PREREG_KEYS = ("services", "max_time")
SAILOR_SET_KEYS = ("name", "ip", "services", "max_time")
USER_SET_KEYS = ("uid", "name", "time_limit", "chores_limit", "notes")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BROADCAST = "255.255.255.255"


class BadArguments(ValueError):
    """A mistake in the command's words; `field` names the parameter when one is at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def split_pairs(words: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise BadArguments(f"'{word}' is not of the form key=value "
                               f"(keys: {', '.join(allowed)})")
        if key not in allowed:
            raise BadArguments(f"unknown parameter '{key}' (expected one of: "
                               f"{', '.join(allowed)})", key)
        if key in pairs:
            raise BadArguments(f"'{key}' is given twice", key)
        pairs[key] = value
    return pairs


def whole_number(key: str, text: str, least: int, digits: int = 6) -> int:
    if not re.fullmatch(f"[0-9]{{1,{digits}}}", text) or int(text) < least:
        raise BadArguments(f"{key} must be a whole number of at least {least}, got '{text}'",
                           key)
    return int(text)


def name(key: str, text: str, field: str | None = None) -> str:
    if not _NAME.match(text):
        raise BadArguments(f"{key} must be a name of letters, digits, '.', '_' or '-', "
                           f"got '{text}'", field or key)
    return text


def ip_address(text: str) -> str:
    """The address of one machine: not unspecified (0.0.0.0), multicast or broadcast."""
    import ipaddress

    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise BadArguments(f"'{text}' is not an IP address", "ip") from None
    if address.is_unspecified or address.is_multicast or str(address) == _BROADCAST:
        raise BadArguments(f"{text} is not the address of one machine (unspecified, "
                           "multicast or broadcast): give the sailor's own address", "ip")
    return text


def chore_body(words: tuple[str, ...]) -> dict[str, Any]:
    pairs = split_pairs(words, CHORE_KEYS)
    if "script" not in pairs or not pairs["script"]:
        raise BadArguments("script=PATH is required", "script")
    if ("service" in pairs) == ("sailor" in pairs):
        raise BadArguments("give either service=NAME or sailor=NAME (exactly one)", "service")
    body: dict[str, Any] = {"script": os.path.abspath(pairs["script"])}
    for key in ("service", "sailor"):
        if key in pairs:
            body[key] = name(key, pairs[key])
    body["cpus"] = whole_number("cpus", pairs.get("cpus", "1"), 1)
    body.update(_gpus(pairs.get("gpus", "0")))
    for key in ("ram", "vram"):
        if key in pairs:
            try:
                body[key] = parse_bytes(pairs[key])
            except ValueError as exc:
                raise BadArguments(f"{key}: {exc}", key) from None
    if "vram" in body and not body["gpus"]:
        raise BadArguments("vram= needs gpus=N: it is the memory asked of each GPU", "vram")
    return body


def _gpus(text: str) -> dict[str, Any]:
    """`N` for any N GPUs, `TYPE:N` for N GPUs of one model."""
    model, sep, count = text.rpartition(":")
    if not sep:
        return {"gpus": whole_number("gpus", text, 0)}
    return {"gpus": whole_number("gpus", count, 1),
            "gpu_type": name("gpus type", model, "gpus")}


def prereg_body(words: tuple[str, ...]) -> dict[str, Any]:
    positional = [w for w in words if "=" not in w]
    if len(positional) != 2:
        raise BadArguments("usage: captain --prereg NAME IP [services=S1,S2] "
                           "[max_time=DD-hh:mm:ss]")
    pairs = split_pairs(tuple(w for w in words if "=" in w), PREREG_KEYS)
    body: dict[str, Any] = {"name": name("name", positional[0]),
                            "ip": ip_address(positional[1])}
    services = [s for s in pairs.get("services", "").split(",") if s]
    body["services"] = [name("services", s) for s in services]
    if "max_time" in pairs:
        body["max_time"] = pairs["max_time"]
    return body


def sailor_set_body(words: tuple[str, ...]) -> dict[str, Any]:
    pairs = split_pairs(words, SAILOR_SET_KEYS)
    if "name" not in pairs:
        raise BadArguments("usage: captain --sailor-set name=NAME [ip=IP] [services=S1,S2] "
                           "[max_time=DD-hh:mm:ss|none]", "name")
    if len(pairs) == 1:
        raise BadArguments("give at least one of ip=, services=, max_time= to change")
    body: dict[str, Any] = {"name": name("name", pairs["name"])}
    if "ip" in pairs:
        body["ip"] = ip_address(pairs["ip"])
    if "services" in pairs:
        body["services"] = [name("services", s) for s in pairs["services"].split(",") if s]
    if "max_time" in pairs:
        body["max_time"] = pairs["max_time"]
    return body


def user_set_body(words: tuple[str, ...]) -> dict[str, Any]:
    """`none` removes a limit (sent as null) or the notes (sent empty); a field left out
    keeps its value."""
    pairs = split_pairs(words, USER_SET_KEYS)
    if "uid" not in pairs:
        raise BadArguments("usage: captain --user-set uid=UID [name=NAME] "
                           "[time_limit=DD-hh:mm:ss|none] [chores_limit=N|none] [notes=TEXT|none]",
                           "uid")
    body: dict[str, Any] = {"uid": whole_number("uid", pairs["uid"], 0, digits=10)}
    if "name" in pairs:
        body["name"] = name("name", pairs["name"])
    if "time_limit" in pairs:
        body["time_limit"] = None if pairs["time_limit"].lower() == "none" else pairs[
            "time_limit"]
    if "chores_limit" in pairs:
        text = pairs["chores_limit"]
        body["chores_limit"] = (None if text.lower() == "none"
                                else whole_number("chores_limit", text, 0))
    if "notes" in pairs:
        body["notes"] = "" if pairs["notes"].lower() == "none" else pairs["notes"]
    return body


def crew_file_body(path: str) -> tuple[dict[str, Any], list[int]]:
    """A crew list file, one sailor a line (`sailor=NAME IP=ADDR [services=S1,S2]
    [max_time=..]`; blank lines and `#` comments skipped), as the body of /prereg_crew and
    the line number of each entry. Every bad line is reported, with its number."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadArguments(f"cannot read the crew file {path}: "
                           f"{getattr(exc, 'strerror', None) or exc}", "file") from None
    sailors: list[dict[str, Any]] = []
    numbers: list[int] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            sailor = _crew_line(words)
            for key in (f"sailor {sailor['name']}", f"address {sailor['ip']}"):
                if key in seen:
                    raise BadArguments(f"{key} is already on line {seen[key]}")
                seen[key] = number
        except BadArguments as exc:
            problems.append(f"{path}:{number}: {exc}")
            continue
        sailors.append(sailor)
        numbers.append(number)
    if problems:
        raise BadArguments("nothing was preregistered:\n" + "\n".join(problems), "file")
    if not sailors:
        raise BadArguments(f"the crew file {path} lists no sailor", "file")
    return {"sailors": sailors}, numbers


def _crew_line(words: list[str]) -> dict[str, Any]:
    lowered = []
    for word in words:
        key, sep, value = word.partition("=")
        lowered.append(f"{key.lower()}{sep}{value}")
    pairs = split_pairs(tuple(lowered), ("sailor", "ip", *PREREG_KEYS))
    for needed in ("sailor", "ip"):
        if needed not in pairs:
            raise BadArguments(f"{'IP' if needed == 'ip' else needed}= is missing "
                               "(expected: sailor=NAME IP=ADDR [services=S1,S2] "
                               "[max_time=DD-hh:mm:ss])")
    body: dict[str, Any] = {"name": name("sailor", pairs["sailor"]),
                            "ip": ip_address(pairs["ip"])}
    body["services"] = [name("services", s) for s in pairs.get("services", "").split(",") if s]
    if "max_time" in pairs:
        try:
            parse_limit(pairs["max_time"])
        except ValueError as exc:
            raise BadArguments(f"max_time: {exc}") from None
        body["max_time"] = pairs["max_time"]
    return body
