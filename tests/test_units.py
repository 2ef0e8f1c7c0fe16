import pytest

from common.units import (
    format_bytes,
    format_bytes_exact,
    format_duration,
    parse_bytes,
    parse_duration,
    parse_limit,
)

MINUTE_S = 60
HOUR_S = 3600
DAY_S = 86400
KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00-00:00:03", 3),
        ("03-00:00:00", 3 * DAY_S),
        ("120-01:02:03", 120 * DAY_S + HOUR_S + 2 * MINUTE_S + 3),
        ("1-23:59:59", DAY_S + 23 * HOUR_S + 59 * MINUTE_S + 59),
        ("3-0:00", 3 * DAY_S),  # D-hh:mm
        ("2-12", 2 * DAY_S + 12 * HOUR_S),  # D-hh
        ("1-2:30", DAY_S + 2 * HOUR_S + 30 * MINUTE_S),
        ("4:00", 4 * MINUTE_S),  # mm:ss
        ("0:30", 30),
        ("90", 90 * MINUTE_S),  # bare minutes
        ("5", 5 * MINUTE_S),
        ("90:00", 90 * MINUTE_S),  # leading minutes are not bounded
        ("1:30:00", HOUR_S + 30 * MINUTE_S),  # hh:mm:ss
        ("48:00:00", 2 * DAY_S),  # leading hours are not bounded
        ("0-0:0:1", 1),
    ],
)
def test_parse_duration_accepts(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected DD-hh:mm:ss"),
        ("0", "longer than zero"),
        ("00-00:00:00", "longer than zero"),
        ("0:00", "longer than zero"),
        ("-5", "expected DD-hh:mm:ss"),
        ("-1-00:00:00", "expected DD-hh:mm:ss"),
        ("1:60", "seconds must be 0-59"),
        ("1:60:00", "minutes must be 0-59"),
        ("1-0:60", "minutes must be 0-59"),
        ("1-24", "hours must be 0-23"),
        ("1-24:00:00", "hours must be 0-23"),
        ("2-12x", "expected DD-hh:mm:ss"),
        ("abc", "expected DD-hh:mm:ss"),
        (" 5", "expected DD-hh:mm:ss"),
        ("5 ", "expected DD-hh:mm:ss"),
        ("5\n", "expected DD-hh:mm:ss"),
        ("1:2:3:4", "expected DD-hh:mm:ss"),
        ("1-2:3:4:5", "expected DD-hh:mm:ss"),
        ("1-", "expected DD-hh:mm:ss"),
        ("1.5", "expected DD-hh:mm:ss"),
        ("١٢", "expected DD-hh:mm:ss"),  # Arabic-Indic digits
        ("１０", "expected DD-hh:mm:ss"),  # full-width digits
        ("none", "expected DD-hh:mm:ss"),
    ],
)
def test_parse_duration_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


def test_parse_duration_message_names_the_forms() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("2-12x")
    assert str(caught.value) == (
        "expected DD-hh:mm:ss (or hh:mm:ss, mm:ss, mm, D-hh, D-hh:mm), got '2-12x'"
    )


@pytest.mark.parametrize("text", ["none", "None", "NONE"])
def test_parse_limit_none_removes_the_limit(text: str) -> None:
    assert parse_limit(text) is None


def test_parse_limit_reads_durations() -> None:
    assert parse_limit("3-0:00") == 3 * DAY_S


@pytest.mark.parametrize("text", ["", "0", "nothing", "none ", "unlimited", "-1", "1:99"])
def test_parse_limit_never_takes_garbage_as_no_limit(text: str) -> None:
    with pytest.raises(ValueError, match="'none'"):
        parse_limit(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00-00:00:00"),
        (3, "00-00:00:03"),
        (3 * DAY_S, "03-00:00:00"),
        (120 * DAY_S + HOUR_S + 2 * MINUTE_S + 3, "120-01:02:03"),
        (DAY_S - 1, "00-23:59:59"),
    ],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 59, 3600, 86399, 86400, 1234567])
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)


@pytest.mark.parametrize(
    ("text", "count_bytes"),
    [
        ("1", 1),
        ("1000", 1000),
        ("1K", KIB),
        ("1k", KIB),
        ("1KB", KIB),
        ("1kib", KIB),
        ("1KiB", KIB),
        ("512M", 512 * MIB),
        ("512mb", 512 * MIB),
        ("80G", 80 * GIB),
        ("80GiB", 80 * GIB),
        ("1.5G", 3 * GIB // 2),
        ("0.5K", 512),
        ("2T", 2 * TIB),
        ("1.1K", 1126),  # a fraction of a byte is dropped
    ],
)
def test_parse_bytes_accepts(text: str, count_bytes: int) -> None:
    assert parse_bytes(text) == count_bytes


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected a number of bytes"),
        ("0", "at least one byte"),
        ("0G", "at least one byte"),
        ("0.0001K", "at least one byte"),
        ("-1", "expected a number of bytes"),
        ("-1G", "expected a number of bytes"),
        ("1.5", "must be whole"),
        ("1P", "expected a number of bytes"),
        ("1GG", "expected a number of bytes"),
        ("1iB", "expected a number of bytes"),
        ("G", "expected a number of bytes"),
        ("1 G", "expected a number of bytes"),
        (" 1G", "expected a number of bytes"),
        ("1G\n", "expected a number of bytes"),
        (".5G", "expected a number of bytes"),
        ("1.G", "expected a number of bytes"),
        ("lots", "expected a number of bytes"),
        ("１G", "expected a number of bytes"),  # full-width digit
    ],
)
def test_parse_bytes_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_bytes(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    ("count_bytes", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (2_000_000_000, "1.9 GiB"),
        (80 * GIB, "80.0 GiB"),
        (3 * TIB, "3.0 TiB"),
    ],
)
def test_format_bytes(count_bytes: int, text: str) -> None:
    assert format_bytes(count_bytes) == text


@pytest.mark.parametrize(
    ("count_bytes", "text"),
    [(1000, "1000"), (KIB, "1K"), (1536 * MIB, "1536M"), (80 * GIB, "80G"), (2 * TIB, "2T")],
)
def test_format_bytes_exact_round_trips(count_bytes: int, text: str) -> None:
    assert format_bytes_exact(count_bytes) == text
    assert parse_bytes(text) == count_bytes
