"""The sailor's first run: ask what this machine offers to the captain, then save it.

Each answer comes from an option, from the defaults with `--yes`, or from a prompt. The
defaults are the saved answers when there are some, else what the machine has.
"""

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import click

from common.units import format_bytes, format_bytes_exact, parse_bytes
from sailor import detect
from sailor.resources import (
    SavedResources,
    format_gpus,
    format_ids,
    load_resources,
    parse_gpus,
    resources_path,
    save_resources,
)

T = TypeVar("T")

NO_KEY_WARNING = (
    "Warning: no cluster key. Without it this sailor works only with a captain on this same "
    "machine, running as root. To work with a captain elsewhere, put the key that "
    "'captain --show-key' prints on the head machine in a private file "
    "(chmod 600) and run this again with --cluster-key-file PATH."
)

_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def run_first_run(
    data_dir: Path,
    *,
    captain: str | None,
    cpus: int | None,
    gpus: str | None,
    ram: str | None,
    cluster_key: str | None,
    assume_yes: bool,
) -> SavedResources:
    """Settle every answer, save them in `data_dir` and return what was saved.

    A bad option value raises `click.BadParameter` and a bad typed answer is asked again;
    nothing is saved unless every answer is valid.
    """
    try:
        saved = load_resources(data_dir)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    cores = detect.detect_cores()
    total_ram_bytes = detect.detect_ram_bytes()

    # Defaults: the saved answers, else what the machine has.
    if saved is not None:
        default_captain: str | None = saved.captain
        default_cpus = saved.cpus
        default_gpus = saved.gpus
        default_ram_bytes = saved.ram
        default_key = saved.cluster_key
    else:
        default_captain = None
        default_cpus = len(cores)
        default_gpus = detect.detect_gpus()
        default_ram_bytes = total_ram_bytes
        default_key = ""

    questions = (
        _Question(
            "--captain",
            captain,
            default_captain,
            parse_captain_address,
            "Captain address (ADDR:PORT)",
        ),
        _Question(
            "--cpus",
            None if cpus is None else str(cpus),
            str(default_cpus),
            lambda text: parse_cpu_count(text, len(cores)),
            f"Cores to offer (this machine allows {len(cores)})",
        ),
        _Question(
            "--gpus",
            gpus,
            format_gpus(default_gpus),
            parse_gpus,
            "GPUs to offer (TYPE:VRAM,... or none)",
        ),
        _Question(
            "--ram",
            ram,
            format_bytes_exact(default_ram_bytes),
            lambda text: parse_ram(text, total_ram_bytes),
            f"Memory to offer (this machine has {format_bytes(total_ram_bytes)})",
        ),
    )
    captain_q, cpus_q, gpus_q, ram_q = questions

    # A bad option fails before anything is asked.
    for question in questions:
        question.check_given()

    # Ask for the rest in turn.
    captain_addr = captain_q.answer(assume_yes)
    cpu_count = cpus_q.answer(assume_yes)
    gpu_list = gpus_q.answer(assume_yes)
    ram_bytes = ram_q.answer(assume_yes)
    key = _ask_cluster_key(cluster_key, default_key, assume_yes)

    # Save only now that every answer is valid.
    res = SavedResources(
        captain=captain_addr,
        cpus=cpu_count,
        cores=cores[:cpu_count],
        gpus=gpu_list,
        ram=ram_bytes,
        cluster_key=key,
    )
    try:
        save_resources(data_dir, res)
    except OSError as error:
        raise click.ClickException(
            f"cannot save the answers in {data_dir}: {error.strerror}") from None
    click.echo(_describe(res, resources_path(data_dir)))
    if not res.cluster_key:
        click.echo(NO_KEY_WARNING, err=True)
    return res


@dataclass(frozen=True)
class _Question(Generic[T]):
    """One answer: from its option when given, the default with `--yes`, else a prompt."""

    option: str
    given: str | None
    default: str | None
    check: Callable[[str], T]
    prompt_text: str

    def check_given(self) -> T | None:
        if self.given is None:
            return None
        try:
            return self.check(self.given)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint=self.option) from None

    def answer(self, assume_yes: bool) -> T:
        given = self.check_given()
        if given is not None:
            return given

        if assume_yes:
            if self.default is None:
                raise click.UsageError(f"{self.option} {self._metavar()} is required with --yes")
            try:
                return self.check(self.default)
            except ValueError as error:
                raise click.UsageError(
                    f"the default {self.default!r} for {self.option} is not valid ({error}); "
                    f"give {self.option}"
                ) from None

        def value_proc(text: str) -> T:
            try:
                return self.check(text)
            except ValueError as error:
                raise click.BadParameter(str(error)) from None

        return click.prompt(self.prompt_text, default=self.default, value_proc=value_proc)

    def _metavar(self) -> str:
        return "ADDR:PORT" if self.option == "--captain" else "VALUE"


def _ask_cluster_key(given: str | None, default: str, assume_yes: bool) -> str:
    if given is not None:
        return given
    if assume_yes:
        return default
    keep = "Enter to keep the saved one" if default else "Enter for none"
    key: str = click.prompt(
        f"Cluster key from the admin ({keep})",
        default=default,
        hide_input=True,
        show_default=False,
    )
    return key


def parse_captain_address(text: str) -> str:
    """Check `ADDR:PORT` (an IPv4 address or a host name, and a port 1-65535)."""
    host, colon, port_text = text.strip().rpartition(":")
    if not colon or not host:
        raise ValueError(f"expected ADDR:PORT (e.g. 10.0.0.1:8000), got {text!r}")
    if not _is_ipv4_or_host_name(host):
        raise ValueError(f"{host!r} is neither an IPv4 address nor a host name")
    if re.fullmatch(r"[0-9]{1,5}", port_text) is None or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, got {port_text!r}")
    return f"{host}:{int(port_text)}"


def _is_ipv4_or_host_name(host: str) -> bool:
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    labels = host.split(".")
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def parse_cpu_count(text: str, allowed_count: int) -> int:
    """Check a number of cores: at least one, at most the cores this process may use."""
    if re.fullmatch(r"[0-9]+", text.strip()) is None:
        raise ValueError(f"expected a whole number of cores, got {text!r}")
    count = int(text.strip())
    if count < 1:
        raise ValueError("offer at least one core")
    if count > allowed_count:
        raise ValueError(f"this machine has only {allowed_count} cores, cannot offer {count}")
    return count


def parse_ram(text: str, total_bytes: int) -> int:
    """Check an amount of memory: a size no larger than what the machine has."""
    ram_bytes = parse_bytes(text.strip())
    if ram_bytes > total_bytes:
        raise ValueError(
            f"this machine has only {format_bytes(total_bytes)} ({total_bytes} bytes), "
            f"cannot offer {format_bytes(ram_bytes)}"
        )
    return ram_bytes


def _describe(res: SavedResources, path: Path) -> str:
    return (
        f"Saved to {path}: captain {res.captain}, {res.cpus} cores ({format_ids(res.cores)}), "
        f"GPUs {format_gpus(res.gpus)}, {format_bytes(res.ram)} of memory, "
        f"cluster key {'set' if res.cluster_key else 'not set'}."
    )
