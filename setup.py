#!/usr/bin/env python3
"""Install Captain on this machine: its environment, the shell aliases and the services.

This is the admin's installer, not a build script: hatchling builds the package from
pyproject.toml and never runs this file. It uses the standard library only, because it runs
before any environment exists.

    python3 setup.py --local-crew           environment, then a captain, a sailor and an
                                            example chore on this machine (data/local/)
    python3 setup.py --captain --sailor     environment in .captainenv, aliases in ~/.bashrc
                                            (and, as root, /usr/local/bin/captain and sailor)
    python3 setup.py --remove-aliases       take the aliases out of ~/.bashrc
    python3 setup.py --uninstall            aliases, command wrappers and the environment
    python3 setup.py --service --captain    install, enable and start the captain's unit
    python3 setup.py --service --sailor     the same for a sailor, after its first run

Run `python3 setup.py --help` for every option; docs/install.md walks through a whole install.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".captainenv"
VENV_BIN = VENV / "bin"
TEMPLATE_DIR = ROOT / "systemd"
PROGRAMS = ("captain", "sailor")

SYSTEM_PYTHON = Path("/usr/bin/python3")
MIN_PYTHON = (3, 11)
PIP_TAIL_LINES = 30

BLOCK_BEGIN = "# >>> captain aliases >>>"
BLOCK_END = "# <<< captain aliases <<<"
WRAPPER_MARK = "# captain-setup wrapper"

DEFAULT_BIN_DIR = Path("/usr/local/bin")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_DATA_DIR = Path("/var/lib/captain")
DEFAULT_HOST = "0.0.0.0"
# The daemons' own default ports: the CLI looks for the captain on 8750 unless told.
DEFAULT_PORTS = {"captain": 8750, "sailor": 8751}
# Folders of the checkout that may hold a daemon's private data (its default data folder):
# opening the checkout up to every user leaves them alone.
PRIVATE_FOLDERS = ("data",)
# Options whose value is a secret, masked wherever a command is shown.
SECRET_OPTIONS = ("--cluster-key",)

# Characters that would break a quoted alias, a shell wrapper or a unit file's ExecStart.
UNSAFE_PATH_CHARS = set("\"'`$\\\n\t ")


class SetupError(Exception):
    """A problem the admin can fix; shown as one line, without a traceback."""


@dataclass
class Daemon:
    """What one service needs: which program, where it listens, where it keeps its data."""

    name: str
    port: int
    host: str
    data: Path

    @property
    def unit_name(self) -> str:
        return f"{self.name}.service"


# ---------------------------------------------------------------------------------------------
# Small helpers


def is_root() -> bool:
    return os.geteuid() == 0


def say(message: str) -> None:
    print(f"setup.py: {message}", flush=True)


def shown(command: list[str]) -> str:
    """The command as a line to show, with secrets masked."""
    parts = [str(part) for part in command]
    for index, part in enumerate(parts[:-1]):
        if part in SECRET_OPTIONS:
            parts[index + 1] = "********"
    return shlex.join(parts)


def as_root(command: list[str]) -> list[str]:
    """The command as it must run to act as root: itself when root, else through sudo."""
    return command if is_root() else ["sudo", *command]


def can_write(path: Path) -> bool:
    """Whether this user may write in `path` (the nearest folder that exists decides)."""
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    return os.access(existing, os.W_OK)


def as_writer_of(path: Path, command: list[str]) -> list[str]:
    """The command as it must run to write in `path`: through sudo only when needed."""
    return command if can_write(path) else as_root(command)


def tail(text: str, lines: int = PIP_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def check_safe_path(path: Path, what: str) -> None:
    bad = sorted(UNSAFE_PATH_CHARS & set(str(path)))
    if bad:
        raise SetupError(
            f"{what} {str(path)!r} holds characters this installer cannot quote "
            f"({''.join(bad)!r}); move it to a plain path"
        )


def write_file_atomic(path: Path, text: str, mode: int, like: Path | None = None) -> None:
    """Write through a side file and a rename; keep the owner of `like` when root."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, side = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(side, mode)
        if like is not None and is_root():
            info = like.stat()
            os.chown(side, info.st_uid, info.st_gid)
        os.replace(side, path)
    except BaseException:
        Path(side).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# The environment


def world_executable(path: Path) -> bool:
    """Whether any user may run `path`: the file and every folder above it allow others in."""
    real = path.resolve()
    try:
        if not real.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)
    except OSError:
        return False


def choose_python(requested: Path | None) -> Path:
    """The interpreter for the environment: one that every user of the machine can run."""
    if requested is not None:
        return requested
    running = Path(sys.executable)
    private = str(running.resolve()).startswith("/root/") or not world_executable(running)
    if private and SYSTEM_PYTHON.exists() and world_executable(SYSTEM_PYTHON):
        if not venv_matches(SYSTEM_PYTHON):
            say(
                f"{running} is not usable by other users; building the environment with "
                f"{SYSTEM_PYTHON} instead (choose another with --python)"
            )
        return SYSTEM_PYTHON
    return running


def check_python_version(python: Path) -> None:
    wanted = ".".join(str(part) for part in MIN_PYTHON)
    probe = f"import sys; sys.exit(0 if sys.version_info >= {MIN_PYTHON!r} else 1)"
    try:
        result = subprocess.run([str(python), "-c", probe], capture_output=True)
    except OSError as error:
        raise SetupError(f"cannot run {python}: {error}") from error
    if result.returncode != 0:
        raise SetupError(
            f"Captain needs Python {wanted} or newer and {python} is older; "
            f"choose one with --python"
        )


def venv_matches(python: Path) -> bool:
    """Whether the existing environment runs and is built on `python`."""
    venv_python = VENV_BIN / "python"
    if not venv_python.exists():
        return False
    if venv_python.resolve() != python.resolve():
        return False
    return subprocess.run([str(venv_python), "-c", ""], capture_output=True).returncode == 0


def ensure_venv(python: Path) -> None:
    if venv_matches(python):
        return
    command = [str(python), "-m", "venv", "--clear", str(VENV)]
    say(f"creating the environment {VENV} with {python}")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError(
            f"could not create the environment ({shown(command)}):\n"
            f"{tail(result.stdout + result.stderr)}\n"
            f"On Debian or Ubuntu, `apt install python3-venv` brings the venv module."
        )


def install_project() -> None:
    pip = [str(VENV_BIN / "python"), "-m", "pip"]
    command = [*pip, "install", "--quiet", "--disable-pip-version-check", str(ROOT)]
    if all((VENV_BIN / name).exists() for name in PROGRAMS):
        say(f"updating Captain in {VENV} from {ROOT}")
    else:
        say(f"installing Captain and its dependencies into {VENV} (this takes a minute)")
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SetupError(
            f"pip could not install the project ({shown(command)}); its last "
            f"lines:\n{tail(result.stdout + result.stderr)}"
        )
    missing = [name for name in PROGRAMS if not (VENV_BIN / name).exists()]
    if missing:
        raise SetupError(
            f"the environment has no {', '.join(missing)} command after pip "
            f"install; check [project.scripts] in pyproject.toml"
        )


def open_permissions(top: Path, shared: bool) -> None:
    """Take write access for others away; when `shared`, let every user read and run (a+rX),
    except in the private folders."""
    for folder, subfolders, files in os.walk(top):
        for name in [*subfolders, *files]:
            path = Path(folder) / name
            loosen_or_tighten(path, shared and not in_private_folder(path, top))
    loosen_or_tighten(top, shared)


def in_private_folder(path: Path, top: Path) -> bool:
    parts = path.relative_to(top).parts
    return bool(parts) and parts[0] in PRIVATE_FOLDERS


def loosen_or_tighten(path: Path, shared: bool) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return
    mode = stat.S_IMODE(info.st_mode) & ~stat.S_IWOTH
    if shared:
        mode |= stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if stat.S_ISDIR(info.st_mode) or mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
            mode |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    if mode != stat.S_IMODE(info.st_mode):
        os.chmod(path, mode)


def warn_if_unreachable(path: Path) -> None:
    """Other users need every folder above the install to be open to them."""
    closed = [parent for parent in path.parents if not parent.stat().st_mode & stat.S_IXOTH]
    if closed:
        say(
            f"warning: other users cannot enter {closed[0]}, so only root can run Captain "
            f"from {path}; install from a folder such as /opt/captain to share it"
        )


def build_environment(requested_python: Path | None) -> None:
    # 1. An environment on an interpreter everyone can run, with the project in it.
    python = choose_python(requested_python)
    check_python_version(python)
    ensure_venv(python)
    install_project()

    # 2. As root, the code and the environment are for every user; never world-writable.
    if is_root():
        open_permissions(ROOT, shared=True)
        warn_if_unreachable(ROOT)
    else:
        open_permissions(VENV, shared=False)


# ---------------------------------------------------------------------------------------------
# Aliases in ~/.bashrc


def bashrc_path() -> Path:
    home = os.environ.get("HOME") or str(Path.home())
    return Path(home) / ".bashrc"


def alias_line(name: str) -> str:
    activate = VENV_BIN / "activate"
    return f'alias {name}="source {activate}; {VENV_BIN / name}"'


def split_alias_block(text: str) -> tuple[str, set[str]]:
    """The text without our block (and the blank line before it), and the names it held."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    names: set[str] = set()
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped == BLOCK_BEGIN and not inside:
            inside = True
            if kept and not kept[-1].strip():
                kept.pop()
        elif inside and stripped == BLOCK_END:
            inside = False
        elif inside:
            if stripped.startswith("alias ") and "=" in stripped:
                names.add(stripped[len("alias ") :].split("=", 1)[0])
        else:
            kept.append(line)
    return "".join(kept), names


def with_alias_block(text: str, names: set[str]) -> str:
    """The text with one block holding an alias for each name, replacing any earlier block."""
    rest, earlier = split_alias_block(text)
    wanted = [name for name in PROGRAMS if name in names | earlier]
    note = (
        f"# Written by {ROOT / 'setup.py'}; take them out with: "
        f"python3 {ROOT / 'setup.py'} --remove-aliases"
    )
    lines = [BLOCK_BEGIN, note, *(alias_line(name) for name in wanted), BLOCK_END]
    block = "\n".join(lines) + "\n"
    if not rest.strip():
        return block
    return rest.rstrip("\n") + "\n\n" + block


def rewrite_bashrc(change_text: Callable[[str], str]) -> Path:
    path = bashrc_path()
    target = path.resolve() if path.is_symlink() else path
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    new = change_text(old)
    if new != old:
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644
        owner = target if target.exists() else target.parent
        write_file_atomic(target, new, mode & ~stat.S_IWOTH, like=owner)
    return path


def add_aliases(names: set[str]) -> None:
    path = rewrite_bashrc(lambda text: with_alias_block(text, names))
    held = split_alias_block(path.read_text(encoding="utf-8"))[1]
    say(
        f"aliases for {', '.join(sorted(held))} are in {path}; open a new shell "
        f"(or run: source {path}) to use them"
    )


def remove_aliases() -> None:
    path = rewrite_bashrc(lambda text: split_alias_block(text)[0])
    say(f"no Captain aliases left in {path}")


# ---------------------------------------------------------------------------------------------
# Command wrappers for every user (as root)


def wrapper_text(name: str) -> str:
    return (
        f"#!/bin/sh\n"
        f"{WRAPPER_MARK}: runs the {name} command of {VENV}\n"
        f'exec {shlex.quote(str(VENV_BIN / name))} "$@"\n'
    )


def is_our_wrapper(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return any(WRAPPER_MARK in handle.readline() for _ in range(3))
    except OSError:
        return False


def write_wrappers(bin_dir: Path, names: set[str]) -> None:
    for name in sorted(names):
        path = bin_dir / name
        if (path.exists() or path.is_symlink()) and not is_our_wrapper(path):
            say(f"warning: {path} exists and was not written by this installer; left as it is")
            continue
        write_file_atomic(path, wrapper_text(name), 0o755)
        say(f"wrote {path}")


def remove_wrappers(bin_dir: Path) -> None:
    for name in PROGRAMS:
        path = bin_dir / name
        if is_our_wrapper(path):
            path.unlink()
            say(f"removed {path}")


def wrapper_dir(requested: Path | None) -> Path | None:
    if requested is not None:
        return requested
    return DEFAULT_BIN_DIR if is_root() else None


# ---------------------------------------------------------------------------------------------
# Services


def systemd_running() -> bool:
    return shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()


def ask(question: str, default: str) -> str:
    """An answer from the admin at a terminal; the default when nobody is there to ask."""
    if not sys.stdin.isatty():
        return default
    try:
        answer = input(f"{question} [{default}]: ").strip()
    except EOFError:
        return default
    return answer or default


def ask_port(name: str, given: int | None) -> int:
    if given is not None:
        return checked_port(str(given), name)
    while True:
        answer = ask(f"Port for the {name} to listen on", str(DEFAULT_PORTS[name]))
        try:
            return checked_port(answer, name)
        except SetupError as error:
            if not sys.stdin.isatty():
                raise
            print(error)


def checked_port(text: str, name: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise SetupError(f"the {name} port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def plan_daemons(args: argparse.Namespace, names: list[str]) -> list[Daemon]:
    ports = {name: ask_port(name, getattr(args, f"{name}_port")) for name in names}
    host = args.host or ask("Address the daemons listen on (0.0.0.0: every address)", DEFAULT_HOST)
    base = args.data or Path(
        ask("Folder for the daemons' data (each gets a subfolder)", str(DEFAULT_DATA_DIR))
    )
    daemons = []
    for name in names:
        data = getattr(args, f"{name}_data") or base / name
        daemons.append(Daemon(name=name, port=ports[name], host=host, data=data.absolute()))
    return daemons


def systemd_value(text: str) -> str:
    """A value as a unit file must hold it: `%` starts a specifier there."""
    return text.replace("%", "%%")


def fill_unit(daemon: Daemon) -> str:
    template = TEMPLATE_DIR / f"{daemon.name}.service.in"
    text = template.read_text(encoding="utf-8")
    for placeholder, value in (
        ("@ROOT@", str(ROOT)),
        ("@PORT@", str(daemon.port)),
        ("@HOST@", daemon.host),
        ("@DATA@", str(daemon.data)),
    ):
        text = text.replace(placeholder, systemd_value(value))
    leftover = re.search(r"@[A-Z_]+@", text)
    if leftover:
        raise SetupError(
            f"{template} has a placeholder this installer does not fill: {leftover.group()}"
        )
    return text


def first_run_command(args: argparse.Namespace, daemon: Daemon) -> list[str]:
    command = [str(VENV_BIN / "sailor"), "--data", str(daemon.data)]
    for option, value in (
        ("--captain", args.captain_addr),
        ("--cpus", args.cpus),
        ("--gpus", args.gpus),
        ("--ram", args.ram),
        ("--cluster-key", args.cluster_key),
    ):
        if value is not None:
            command += [option, str(value)]
    if args.yes:
        command.append("--yes")
    return command


def preparation_steps(args: argparse.Namespace, daemons: list[Daemon]) -> list[list[str]]:
    """What a machine needs with or without systemd: the data folders, and the sailor's
    first run when it has no saved resources."""
    steps = [
        as_writer_of(daemon.data, ["install", "-d", "-m", "0700", str(daemon.data)])
        for daemon in daemons
        if not daemon.data.is_dir()
    ]
    for daemon in daemons:
        if daemon.name == "sailor" and not (daemon.data / "resources.json").exists():
            steps.append(as_writer_of(daemon.data, first_run_command(args, daemon)))
    return steps


def systemctl_steps(
    daemons: list[Daemon], unit_dir: Path, units: dict[str, str]
) -> list[list[str]]:
    """The calls that load, enable and start the units; a unit that was installed already
    and now changes is restarted, so that it runs with its new settings."""
    names = [daemon.unit_name for daemon in daemons]
    steps = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", *names]]
    replaced = [
        daemon.unit_name
        for daemon in daemons
        if (unit_dir / daemon.unit_name).exists()
        and unit_changed(unit_dir / daemon.unit_name, units[daemon.name])
    ]
    if replaced:
        steps.append(["systemctl", "try-restart", *replaced])
    return [as_root(step) for step in steps]


def unit_changed(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") != text
    except OSError:
        return True


def install_units(unit_dir: Path, daemons: list[Daemon], units: dict[str, str]) -> None:
    for daemon in daemons:
        path = unit_dir / daemon.unit_name
        if can_write(path.parent):
            write_file_atomic(path, units[daemon.name], 0o644)
        else:
            install_through_sudo(path, units[daemon.name])
        say(f"wrote {path}")


def install_through_sudo(path: Path, text: str) -> None:
    fd, side = tempfile.mkstemp(prefix=f"{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        run_checked(as_root(["install", "-D", "-m", "0644", side, str(path)]))
    finally:
        Path(side).unlink(missing_ok=True)


def run_checked(command: list[str]) -> None:
    if command[0] == "sudo" and shutil.which("sudo") is None:
        raise SetupError(f"this step needs root, and sudo is missing: {shown(command[1:])}")
    say(f"running: {shown(command)}")
    result = subprocess.run(command)
    if result.returncode != 0:
        raise SetupError(f"{shown(command)} failed with exit status {result.returncode}")


def print_plan(
    unit_dir: Path, daemons: list[Daemon], units: dict[str, str], steps: list[list[str]]
) -> None:
    for daemon in daemons:
        print(f"----- {unit_dir / daemon.unit_name}")
        print(units[daemon.name], end="")
    print("----- commands")
    for step in steps:
        print(f"  {shown(step)}")


def check_resources_saved(daemons: list[Daemon]) -> None:
    for daemon in daemons:
        resources = daemon.data / "resources.json"
        if daemon.name == "sailor" and not resources.exists():
            raise SetupError(f"the sailor's first run ended but {resources} is missing")


def setup_services(args: argparse.Namespace, names: list[str]) -> None:
    # 1. The answers (options first, then questions at a terminal), and the environment.
    check_safe_path(ROOT, "the install folder")
    daemons = plan_daemons(args, names)
    for daemon in daemons:
        check_safe_path(daemon.data, f"the {daemon.name} data folder")
    built = all((VENV_BIN / name).exists() for name in names)
    if not built and not args.dry_run:
        build_environment(args.python)

    # 2. The filled units and every step that installing them takes.
    units = {daemon.name: fill_unit(daemon) for daemon in daemons}
    unit_dir = args.unit_dir or DEFAULT_UNIT_DIR
    preparation = preparation_steps(args, daemons)
    starting = systemctl_steps(daemons, unit_dir, units)
    if args.dry_run:
        say("dry run: nothing is changed; this is what would be done")
        if not built:
            say(
                f"first, the environment would be built: python3 {ROOT / 'setup.py'} "
                + " ".join(f"--{name}" for name in names)
            )
        print_plan(unit_dir, daemons, units, preparation + starting)
        return

    # 3. Data folders and the sailor's first run, which even a machine without systemd needs.
    for step in preparation:
        run_checked(step)
    check_resources_saved(daemons)

    # 4. Install and start the units, or show what that would be.
    if not systemd_running():
        say(
            "systemd is not running on this machine (no systemctl, or /run/systemd/system "
            "is missing): no service was enabled; these units and commands would do it"
        )
        if args.unit_dir is not None:
            install_units(args.unit_dir, daemons, units)
        print_plan(unit_dir, daemons, units, starting)
        return
    warn_if_not_root_owned()
    install_units(unit_dir, daemons, units)
    for step in starting:
        run_checked(step)
    for daemon in daemons:
        say(
            f"{daemon.unit_name} is enabled; see `systemctl status {daemon.unit_name}` and "
            f"`journalctl -u {daemon.unit_name}`"
        )


def warn_if_not_root_owned() -> None:
    owner = ROOT.stat().st_uid
    if owner != 0:
        say(
            f"warning: the services run as root the code in {ROOT}, which uid {owner} can "
            f"change; install from a folder only root can write, such as /opt/captain"
        )


# ---------------------------------------------------------------------------------------------
# Entry


# (flag, type, metavar, help) of the options that only the service setup reads.
SERVICE_OPTIONS = (
    ("--captain-port", int, "PORT", f"the captain's port (default {DEFAULT_PORTS['captain']})"),
    ("--sailor-port", int, "PORT", f"the sailor's port (default {DEFAULT_PORTS['sailor']})"),
    ("--host", str, "ADDR", f"address the daemons listen on (default {DEFAULT_HOST})"),
    ("--data", Path, "DIR", f"holds captain/ and sailor/ (default {DEFAULT_DATA_DIR})"),
    ("--captain-data", Path, "DIR", "the captain's data folder (default DATA/captain)"),
    ("--sailor-data", Path, "DIR", "the sailor's data folder (default DATA/sailor)"),
    ("--unit-dir", Path, "DIR", f"where unit files go (default {DEFAULT_UNIT_DIR})"),
)
# The same for the options handed to the sailor's first run.
FIRST_RUN_OPTIONS = (
    ("--captain-addr", str, "ADDR:PORT", "the captain this sailor joins"),
    ("--cpus", str, "N", "cores the sailor offers"),
    ("--gpus", str, "TYPE:VRAM,...|none", "GPUs the sailor offers"),
    ("--ram", str, "BYTES", "memory the sailor offers"),
    ("--cluster-key", str, "KEY", "the crew's shared key (better typed at the prompt)"),
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="setup.py",
        description="Install Captain: its environment (.captainenv beside this file), the "
        "captain and sailor aliases in ~/.bashrc, and optionally its services.",
    )
    flag = parser.add_argument
    flag("--captain", action="store_true", help="install the captain command")
    flag("--sailor", action="store_true", help="install the sailor command")
    flag("--remove-aliases", action="store_true", help="take the aliases out of ~/.bashrc")
    flag("--uninstall", action="store_true", help="remove aliases, wrappers and environment")
    flag(
        "--local-crew",
        action="store_true",
        help="build the environment, then start a captain and a sailor on this machine and "
        "run an example chore (everything in data/local/; stop with --local-crew-stop)",
    )
    flag("--local-crew-stop", action="store_true", help="stop the local crew's daemons")
    flag(
        "--bin-dir",
        type=Path,
        metavar="DIR",
        help=f"write captain and sailor wrappers here (as root: {DEFAULT_BIN_DIR})",
    )
    flag(
        "--python",
        type=Path,
        metavar="PATH",
        help=f"interpreter for the environment (default: this one, or {SYSTEM_PYTHON} "
        "when other users cannot run this one)",
    )

    service = parser.add_argument_group("services (with --service and --captain/--sailor)")
    service.add_argument(
        "--service",
        action="store_true",
        help="install, enable and start the systemd unit of each daemon",
    )
    for option, kind, metavar, text in SERVICE_OPTIONS:
        service.add_argument(option, type=kind, metavar=metavar, help=text)
    service.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing; print the units and the commands instead",
    )

    first_run = parser.add_argument_group("the sailor's first run (passed on to `sailor`)")
    for option, kind, metavar, text in FIRST_RUN_OPTIONS:
        first_run.add_argument(option, type=kind, metavar=metavar, help=text)
    first_run.add_argument("--yes", action="store_true", help="accept without asking")

    args = parser.parse_args(argv)
    check_combination(parser, args)
    return args


def check_combination(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    chosen = args.captain or args.sailor
    if args.local_crew or args.local_crew_stop:
        if args.service or args.remove_aliases or args.uninstall:
            parser.error("--local-crew goes alone or with --captain/--sailor")
        return
    if args.remove_aliases or args.uninstall:
        if chosen or args.service:
            parser.error("--remove-aliases and --uninstall go alone")
        return
    if not chosen:
        parser.error("say what to install: --captain, --sailor or both")
    if args.dry_run and not args.service:
        parser.error("--dry-run goes with --service")


def uninstall(bin_dir: Path | None) -> None:
    remove_aliases()
    if bin_dir is not None:
        remove_wrappers(bin_dir)
    if VENV.exists():
        shutil.rmtree(VENV)
        say(f"removed {VENV}")
    installed = [name for name in PROGRAMS if (DEFAULT_UNIT_DIR / f"{name}.service").exists()]
    if installed:
        say(
            f"the services {', '.join(installed)} are still installed and now broken; stop "
            f"them with: systemctl disable --now {' '.join(installed)}"
        )


def run_local_crew(extra: list[str]) -> int:
    """Hands over to the environment's local crew runner (see cli/local_crew.py)."""
    if not (VENV_BIN / "python").exists():
        raise SetupError(f"no environment in {VENV}: run python3 setup.py --local-crew")
    return subprocess.call([str(VENV_BIN / "python"), "-m", "cli.local_crew", *extra])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = [name for name in PROGRAMS if getattr(args, name)]
    try:
        if args.uninstall:
            uninstall(wrapper_dir(args.bin_dir))
        elif args.remove_aliases:
            remove_aliases()
        elif args.service:
            setup_services(args, names)
        elif args.local_crew_stop:
            return run_local_crew(["--stop"])
        elif args.local_crew and not names:
            check_safe_path(ROOT, "the install folder")
            build_environment(args.python)
            return run_local_crew([])
        else:
            check_safe_path(ROOT, "the install folder")
            build_environment(args.python)
            add_aliases(set(names))
            bin_dir = wrapper_dir(args.bin_dir)
            if bin_dir is not None:
                write_wrappers(bin_dir, set(names))
            if args.local_crew:
                return run_local_crew([])
    except SetupError as error:
        print(f"setup.py: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("setup.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
