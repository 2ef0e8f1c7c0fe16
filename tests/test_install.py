"""The installer: one environment, aliases written once however often it runs, command
wrappers, unit files that systemd accepts, and the service setup without systemd.

The environment is built for real (pip installs the real dependencies) once for the module,
in a copy of the repository and with a temporary HOME, so the first test takes a minute.
"""

from __future__ import annotations

import importlib.util
import os
import pty
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
SETUP_TIMEOUT_S = 600
SHELL_TIMEOUT_S = 60
PROMPT_TIMEOUT_S = 60
USER_BASHRC = "# the user's own settings\nexport EDITOR=vi\nalias ll='ls -l'\n"
# Variables that tell pip where its packages are; everything else is left out, as for a
# user who logs in afresh.
PASSED_VARIABLES = ("PIP_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
                    "http_proxy", "https_proxy", "NO_PROXY", "no_proxy")
NOT_COPIED = shutil.ignore_patterns(".git", ".captainenv", ".testenv", "__pycache__", "*.pyc",
                                    ".*_cache", "data", "test-output")
SKIP_WITH_SYSTEMD = pytest.mark.skipif(
    Path("/run/systemd/system").is_dir(),
    reason="systemd runs here: this test would enable services on this machine")


@dataclass
class Install:
    src: Path
    home: Path
    bin_dir: Path

    @property
    def venv(self) -> Path:
        return self.src / ".captainenv"


def clean_env(home: Path) -> dict[str, str]:
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update({key: value for key, value in os.environ.items()
                if key.startswith(PASSED_VARIABLES)})
    return env


def copy_repository(dest: Path) -> None:
    """The files git knows of (tracked, or new and not ignored); where git cannot say,
    every file but build outputs."""
    command = ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
               "--exclude-standard"]
    listing = subprocess.run(command, capture_output=True) if shutil.which("git") else None
    if listing is None or listing.returncode != 0:
        shutil.copytree(REPO, dest, ignore=NOT_COPIED)
        return
    for name in listing.stdout.decode().split("\0"):
        source = REPO / name
        if name and source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def run_setup(src: Path, home: Path, *args: str, check: bool = True
              ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PYTHON, "setup.py", *args], cwd=src, env=clean_env(home),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=SETUP_TIMEOUT_S)
    if check and result.returncode != 0:
        pytest.fail(f"setup.py {' '.join(args)} exited {result.returncode}:\n"
                    f"{result.stdout}\n{result.stderr}")
    return result


def interactive_bash(home: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-ic", command], env=clean_env(home),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=SHELL_TIMEOUT_S)


def load_setup_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("captain_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def cli_exists(name: str) -> bool:
    return (REPO / "cli" / f"{name}_cmd.py").exists()


@pytest.fixture(scope="module")
def install() -> Iterator[Install]:
    # A folder other users may enter, so the checks of shared access mean something.
    top = Path(tempfile.mkdtemp(prefix="captain-install-"))
    top.chmod(0o755)
    try:
        installed = Install(src=top / "src", home=top / "home", bin_dir=top / "bin")
        copy_repository(installed.src)
        # A daemon's default data folder in the checkout holds secrets (the cluster key).
        resources = installed.src / "data" / "sailor" / "resources.json"
        resources.parent.mkdir(parents=True)
        resources.write_text("{}")
        resources.chmod(0o600)
        installed.home.mkdir()
        (installed.home / ".bashrc").write_text(USER_BASHRC)

        for _ in range(2):
            run_setup(installed.src, installed.home, "--captain", "--sailor",
                      "--bin-dir", str(installed.bin_dir))
        yield installed
    finally:
        shutil.rmtree(top, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The environment, the aliases and the wrappers


def test_environment_holds_both_commands(install: Install) -> None:
    for name in ("python", "captain", "sailor"):
        assert os.access(install.venv / "bin" / name, os.X_OK), name

    # From /, so that the checkout's own packages are not the ones imported.
    imported = subprocess.run([str(install.venv / "bin" / "python"), "-c",
                               "import cli, common, captain, sailor"], capture_output=True,
                              cwd="/")
    assert imported.returncode == 0, imported.stderr


def test_aliases_written_once_after_two_runs(install: Install) -> None:
    text = (install.home / ".bashrc").read_text()
    lines = text.splitlines()

    assert sum(line.startswith("alias captain=") for line in lines) == 1
    assert sum(line.startswith("alias sailor=") for line in lines) == 1
    assert text.startswith(USER_BASHRC)


def test_alias_activates_environment_and_runs_its_program(install: Install) -> None:
    text = (install.home / ".bashrc").read_text()
    bin_dir = install.venv / "bin"

    assert f'alias captain="source {bin_dir}/activate; {bin_dir}/captain"' in text
    assert f'alias sailor="source {bin_dir}/activate; {bin_dir}/sailor"' in text


def test_fresh_interactive_bash_finds_aliases(install: Install) -> None:
    shell = interactive_bash(install.home, "type -t captain; type -t sailor")

    assert shell.stdout.split() == ["alias", "alias"], shell.stderr


@pytest.mark.parametrize("name", ["captain", "sailor"])
def test_alias_runs_help(install: Install, name: str) -> None:
    if not cli_exists(name):
        pytest.skip(f"cli/{name}_cmd.py is not written yet")

    shell = interactive_bash(install.home, f"{name} --help")

    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip()


def test_wrappers_call_environment_programs(install: Install) -> None:
    for name in ("captain", "sailor"):
        wrapper = install.bin_dir / name
        assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755
        assert f'{install.venv}/bin/{name} "$@"' in wrapper.read_text()
        if cli_exists(name):
            ran = subprocess.run([str(wrapper), "--help"], capture_output=True, text=True,
                                 env=clean_env(install.home), timeout=SHELL_TIMEOUT_S)
            assert ran.returncode == 0, ran.stderr


def test_nothing_left_world_writable(install: Install) -> None:
    for top in (install.src, install.bin_dir, install.home):
        for folder, subfolders, files in os.walk(top):
            for name in [*subfolders, *files]:
                info = (Path(folder) / name).lstat()
                if not stat.S_ISLNK(info.st_mode):
                    assert not info.st_mode & stat.S_IWOTH, Path(folder) / name


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's install is shared with every user")
def test_other_users_can_run_environment(install: Install) -> None:
    if shutil.which("runuser") is None:
        pytest.skip("runuser is missing")
    python = str(install.venv / "bin" / "python")

    ran = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", "import cli, common"],
                         capture_output=True, text=True, cwd="/", timeout=SHELL_TIMEOUT_S)

    assert ran.returncode == 0, ran.stderr


def test_private_data_in_checkout_stays_private(install: Install) -> None:
    resources = install.src / "data" / "sailor" / "resources.json"

    assert stat.S_IMODE(resources.stat().st_mode) == 0o600


def test_remove_aliases_takes_them_out(install: Install, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy2(install.home / ".bashrc", home / ".bashrc")

    run_setup(install.src, home, "--remove-aliases")
    run_setup(install.src, home, "--remove-aliases")

    assert (home / ".bashrc").read_text() == USER_BASHRC
    assert interactive_bash(home, "type -t captain").stdout.strip() == ""


def test_alias_block_keeps_names_from_earlier_runs() -> None:
    setup = load_setup_module()

    captain_only = setup.with_alias_block(USER_BASHRC, {"captain"})
    both = setup.with_alias_block(captain_only, {"sailor"})

    aliases = [line.split("=")[0] for line in both.splitlines() if line.startswith("alias ")]
    assert aliases == ["alias ll", "alias captain", "alias sailor"]
    assert setup.with_alias_block(both, {"captain", "sailor"}) == both
    assert setup.split_alias_block(both) == (USER_BASHRC, {"captain", "sailor"})


# ---------------------------------------------------------------------------------------------
# Services

FIRST_RUN = "--captain-addr 127.0.0.1:18750 --cpus 2 --gpus none --ram 2000000000 --yes"


def setup_service(install: Install, words: str, *paths: str, check: bool = True
                  ) -> subprocess.CompletedProcess[str]:
    """setup.py --service with the options in `words`, then `paths` (which may hold spaces)."""
    return run_setup(install.src, install.home, "--service", *words.split(), *paths,
                     check=check)


@SKIP_WITH_SYSTEMD
def test_units_pass_systemd_analyze(install: Install, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing (Debian package: systemd)")
    data, units = tmp_path / "data", tmp_path / "units"
    (data / "sailor").mkdir(parents=True)
    (data / "sailor" / "resources.json").write_text("{}")

    result = setup_service(
        install, "--captain --sailor --captain-port 18750 --sailor-port 18751 --host 127.0.0.1",
        "--data", str(data), "--unit-dir", str(units))

    assert "systemd is not running" in result.stdout
    for name, port in (("captain", 18750), ("sailor", 18751)):
        lines = (units / f"{name}.service").read_text().splitlines()
        assert (f"ExecStart={install.venv}/bin/{name} --serve {port} --host 127.0.0.1 "
                f"--data {data / name}") in lines
        for setting in ("Restart=on-failure", "StandardOutput=journal", "StandardError=journal",
                        "After=network-online.target", "WantedBy=multi-user.target",
                        "User=root"):
            assert setting in lines, (name, setting)
        verified = subprocess.run(["systemd-analyze", "verify", str(units / f"{name}.service")],
                                  capture_output=True, text=True, timeout=SHELL_TIMEOUT_S)
        assert verified.stdout + verified.stderr == "", name
    sailor_lines = (units / "sailor.service").read_text().splitlines()
    assert "KillMode=process" in sailor_lines
    assert "Delegate=yes" in sailor_lines


def test_service_dry_run_prints_plan_and_changes_nothing(install: Install,
                                                         tmp_path: Path) -> None:
    data, units = tmp_path / "data", tmp_path / "units"

    result = setup_service(install, f"--sailor --sailor-port 18751 {FIRST_RUN} --dry-run "
                           "--cluster-key s3cret", "--data", str(data), "--unit-dir", str(units))

    out = result.stdout
    assert f"ExecStart={install.venv}/bin/sailor --serve 18751 --host 0.0.0.0" in out
    assert (f"{install.venv}/bin/sailor --data {data}/sailor --captain 127.0.0.1:18750 "
            f"--cpus 2 --gpus none --ram 2000000000 --cluster-key '********' --yes") in out
    assert "s3cret" not in out
    assert "systemctl daemon-reload" in out
    assert "systemctl enable --now sailor.service" in out
    assert not data.exists()
    assert not units.exists()


@SKIP_WITH_SYSTEMD
def test_service_without_systemd_runs_sailor_first_run(install: Install,
                                                       tmp_path: Path) -> None:
    if not cli_exists("sailor"):
        pytest.skip("cli/sailor_cmd.py is not written yet")
    data = tmp_path / "data"

    result = setup_service(install, f"--sailor --sailor-port 18751 {FIRST_RUN}",
                           "--data", str(data))

    assert (data / "sailor" / "resources.json").exists()
    assert stat.S_IMODE((data / "sailor").stat().st_mode) == 0o700
    assert "systemd is not running" in result.stdout
    assert "systemctl enable --now sailor.service" in result.stdout


def test_service_asks_at_a_terminal(install: Install, tmp_path: Path) -> None:
    answers = f"18800\n127.0.0.1\n{tmp_path / 'data'}\n"

    out = run_at_terminal(install, ["--service", "--captain", "--dry-run"], answers)

    assert "Port for the captain" in out
    assert f"--serve 18800 --host 127.0.0.1 --data {tmp_path / 'data' / 'captain'}" in out


def test_bad_port_is_one_readable_line(install: Install) -> None:
    result = setup_service(install, "--captain --captain-port 70000 --dry-run", check=False)

    assert result.returncode == 1
    assert "port must be a number from 1 to 65535" in result.stderr
    assert "Traceback" not in result.stderr


def run_at_terminal(install: Install, args: list[str], answers: str) -> str:
    """Run setup.py on a pseudo-terminal, type the answers, and return all it showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([PYTHON, "setup.py", *args], cwd=install.src,
                               env=clean_env(install.home), stdin=terminal, stdout=terminal,
                               stderr=terminal)
    os.close(terminal)
    os.write(controller, answers.encode())
    shown = b""
    deadline = time.monotonic() + PROMPT_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closes when setup.py ends
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(timeout=PROMPT_TIMEOUT_S) == 0, shown.decode(errors="replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return shown.decode(errors="replace").replace("\r\n", "\n")
