"""Every door of the trust table, tried against real daemons: none of them opens.

Users are known by the kernel, sailors by their address and the cluster key, the captain by
its address and the key; chores run as their user, with an environment of their own, and
cannot be turned against a file they could not write themselves.
"""

import http.client
import json
import os
import pwd
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from common.signing import ClusterKey
from crew import CAPTAIN, SAILOR, Crew, Daemon, free_port, wait_until, write_script

STRANGER_IP = "127.0.0.9"


# --- helpers ----------------------------------------------------------------------------------


def cluster_key(crew: Crew) -> ClusterKey:
    return ClusterKey((crew.captain_data / "cluster.key").read_text().strip())


def post(port: int, path: str, body: Any, *, host: str = "127.0.0.1", source: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    """One POST from `source` (an address of this machine), as root; the status and JSON."""
    payload = raw if raw is not None else json.dumps(body).encode()
    connection = http.client.HTTPConnection(
        host, port, timeout=20, source_address=(source, 0) if source else None)
    try:
        connection.request("POST", path, payload,
                           {"Content-Type": "application/json", **(headers or {})})
        answer = connection.getresponse()
        data = answer.read()
    finally:
        connection.close()
    assert answer.getheader("Content-Type", "").startswith("application/json"), data
    return answer.status, json.loads(data)


def signed_post(key: ClusterKey, port: int, path: str, body: Any, *, host: str = "127.0.0.1",
                source: str) -> tuple[int, Any]:
    payload = json.dumps(body).encode()
    return post(port, path, None, host=host, source=source, raw=payload,
                headers=key.headers("POST", path, payload))


def curl_as(user: str, url: str, body: Any = None, *, source: str | None = None,
            method: str = "POST") -> tuple[int, Any]:
    """A request sent by `user` with curl; the status and the JSON answer."""
    argv = ["runuser", "-u", user, "--", "curl", "-s", "-m", "15", "-w", "\n%{http_code}",
            "-X", method, "-H", "Content-Type: application/json"]
    if source is not None:
        argv += ["--interface", source]
    if body is not None:
        argv += ["-d", json.dumps(body)]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=30)
    text, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(text) if text else None


def event_count(crew: Crew) -> int:
    return len(crew.events())


# --- identity on the captain machine --------------------------------------------------------


def test_a_forged_owner_or_uid_in_the_body_changes_nothing(crew: Crew, boat: Path,
                                                          test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    url = f"http://127.0.0.1:{crew.port}/user_chore"
    before = event_count(crew)

    for forged in ({"owner": 0}, {"uid": 0}, {"user": "root"}, {"owner_name": "root"}):
        status, answer = curl_as(test_user, url, {"script": str(script), "service": "cpu",
                                                  **forged})
        assert status == 400, answer
        assert f"unknown field `{next(iter(forged))}`" in answer["error"], answer
    assert event_count(crew) == before

    status, answer = curl_as(test_user, url, {"script": str(script), "service": "cpu"})
    assert status == 201, answer
    assert answer["owner"] == pwd.getpwnam(test_user).pw_uid
    assert answer["owner_name"] == test_user


def test_a_user_sees_only_their_own_chores_whatever_the_query_says(crew: Crew, boat: Path,
                                                                  test_user: str,
                                                                  other_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    long = write_script(boat, "long.sh", "sleep 30\n", owner=test_user)
    chore_id = crew.submit(long, "service=cpu", user=test_user)
    base = f"http://127.0.0.1:{crew.port}/user_consult"

    status, seen = curl_as(other_user, f"{base}?uid={pwd.getpwnam(test_user).pw_uid}",
                           method="GET")
    assert status == 200 and chore_id not in seen
    for url, body, method in ((f"{base}?all=1", None, "GET"), (base, {"all": True}, "POST")):
        status, answer = curl_as(other_user, url, body, method=method)
        assert status == 403 and "root" in answer["error"], answer
    done = crew.cli("--consult", "--all", user=other_user)
    assert done.returncode != 0 and "root" in done.stderr
    assert chore_id in crew.cli_json("--consult", user=test_user)


def test_a_user_cannot_cancel_another_users_chore(crew: Crew, boat: Path, test_user: str,
                                                  other_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    long = write_script(boat, "long.sh", "sleep 30\n", owner=test_user)
    chore_id = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "running")
    before = event_count(crew)

    done = crew.cli("--cancel", chore_id, user=other_user)
    assert done.returncode != 0 and "another user" in done.stderr
    status, answer = curl_as(other_user, f"http://127.0.0.1:{crew.port}/user_cancel",
                             {"chore_id": chore_id})
    assert status == 403, answer

    assert event_count(crew) == before
    assert crew.chore(chore_id)["status"] == "running"
    crew.cli_ok("--cancel", chore_id)  # root may cancel anyone's
    assert crew.wait_chore(chore_id, "canceled")["reason"] == "canceled by admin"


def test_root_chores_are_refused_unless_the_admin_allows_them(crew: Crew, scratch: Path):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(scratch, "root.sh", "exit 0\n")
    before = event_count(crew)

    done = crew.cli("--chore", f"script={script}", "service=cpu")

    assert done.returncode != 0 and "--allow-root-chores" in done.stderr
    assert event_count(crew) == before


def test_a_client_from_another_machine_is_refused():
    from unittest import mock

    from aiohttp.test_utils import make_mocked_request

    from captain.http_api import caller_of
    from common.refusals import Refusal

    ends = {"peername": ("192.0.2.7", 40000), "sockname": ("127.0.0.1", 8750)}
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: ends.get(name, default)
    request = make_mocked_request("GET", "/user_consult", transport=transport)

    with pytest.raises(Refusal) as refused:
        caller_of(request)
    assert refused.value.status == 403 and "captain machine" in refused.value.message


# --- sailors and the cluster key --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sailor_register", "/sailor_awake", "/sailor_report"])
def test_sailor_calls_from_outside_the_crew_are_refused(crew: Crew, path: str):
    crew.cli_ok("--prereg", "ghost", "127.0.0.2", "services=cpu")
    before = event_count(crew)
    body = {"port": 9, "cpus": 1, "cores": [0], "ram": 1} if path == "/sailor_register" else (
        {"port": 9} if path == "/sailor_awake" else {"reports": []})

    status, answer = signed_post(cluster_key(crew), crew.port, path, body, source=STRANGER_IP)

    assert status == 403 and "crew list" in answer["error"]
    assert event_count(crew) == before


def test_unsigned_badly_signed_and_replayed_sailor_calls_are_refused(crew: Crew,
                                                                    test_user: str):
    crew.cli_ok("--prereg", "ghost", "127.0.0.2", "services=cpu")
    register = {"port": 9, "cpus": 1, "cores": [0], "ram": 1}
    url = f"http://127.0.0.1:{crew.port}/sailor_register"
    before = event_count(crew)

    # 1. Unsigned, from the crew address, by a process that is not root: refused.
    status, answer = curl_as(test_user, url, register, source="127.0.0.2")
    assert status == 401 and "not signed" in answer["error"]

    # 2. Signed with another key, even by root: refused.
    status, answer = signed_post(ClusterKey("not-the-key"), crew.port, "/sailor_register",
                                 register, source="127.0.0.2")
    assert status == 401 and "does not match" in answer["error"]

    # 3. Signed with the key, but for another body: refused.
    key = cluster_key(crew)
    headers = key.headers("POST", "/sailor_register", b'{"port": 10}')
    status, answer = post(crew.port, "/sailor_register", register, source="127.0.0.2",
                          headers=headers)
    assert status == 401 and "does not match" in answer["error"]
    assert event_count(crew) == before
    assert crew.cli_json("--crew")["ghost"]["registered"] is False

    # 4. Signed right: taken once; the same request again is a replay.
    payload = json.dumps({"port": 9}).encode()
    headers = key.headers("POST", "/sailor_awake", payload)
    first = post(crew.port, "/sailor_awake", None, raw=payload, source="127.0.0.2",
                 headers=headers)
    again = post(crew.port, "/sailor_awake", None, raw=payload, source="127.0.0.2",
                 headers=headers)
    assert first[0] == 200 and first[1]["registered"] is False
    assert again[0] == 401 and "replay" in again[1]["error"]
    assert event_count(crew) == before
    assert "refused a sailor call from 127.0.0.2" in crew.captain.log()


def test_a_request_signed_too_long_ago_is_refused(crew: Crew):
    from common.clock import ManualClock

    crew.cli_ok("--prereg", "ghost", "127.0.0.2", "services=cpu")
    key = (crew.captain_data / "cluster.key").read_text().strip()
    old = ClusterKey(key, ManualClock(wall_s=time.time() - 3600))

    status, answer = signed_post(old, crew.port, "/sailor_awake", {"port": 9},
                                 source="127.0.0.2")

    assert status == 401 and "away from this machine's clock" in answer["error"]


def sailor_order(chore_id: str, owner: int, script: str = "/bin/true") -> dict[str, Any]:
    return {"chore_id": chore_id, "script": script, "owner": owner, "cores": [0]}


def test_the_sailor_takes_orders_from_its_captain_only(crew: Crew, scratch: Path,
                                                       test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    port = crew.sailor_ports["s1"]
    uid = pwd.getpwnam(test_user).pw_uid
    marker = scratch / "ran"
    script = write_script(scratch, "order.sh", f"touch {marker}\n")
    order = sailor_order("900", uid, str(script))
    key = cluster_key(crew)

    # 1. From another address, even signed with the key: refused.
    status, answer = signed_post(key, port, "/captain_request", order, host="127.0.0.2",
                                 source=STRANGER_IP)
    assert status == 403 and "not this sailor's captain" in answer["error"]

    # 2. From the captain's address but unsigned, by a process that is not root: refused.
    status, answer = curl_as(test_user, f"http://127.0.0.2:{port}/captain_request", order,
                             source="127.0.0.1")
    assert status == 401, answer

    # 3. From the captain's address, signed with another key: refused.
    status, answer = signed_post(ClusterKey("not-the-key"), port, "/captain_cancels",
                                 {"chore_id": "900"}, host="127.0.0.2", source="127.0.0.1")
    assert status == 401, answer

    assert not marker.exists()
    assert not (crew.root / "s1" / "chores" / "900").exists()
    assert "refused an order from 127.0.0.9" in crew.sailors["s1"].log()


def test_the_sailor_refuses_a_user_it_does_not_know_and_says_why(crew: Crew):
    crew.add_sailor("s1", "127.0.0.2")
    unknown = 3_999_999
    with pytest.raises(KeyError):
        pwd.getpwuid(unknown)

    status, answer = signed_post(cluster_key(crew), crew.sailor_ports["s1"], "/captain_request",
                                 sailor_order("901", unknown), host="127.0.0.2",
                                 source="127.0.0.1")

    assert status == 200
    assert answer["accepted"] is False
    assert f"unknown user uid {unknown}" in answer["reason"]


def test_a_sailor_without_the_key_works_only_with_a_local_root_captain(crew: Crew,
                                                                      boat: Path,
                                                                      test_user: str):
    data = crew.root / "keyless"
    subprocess.run([SAILOR, "--data", str(data), "--captain", f"127.0.0.1:{crew.port}",
                    "--cpus", "1", "--gpus", "none", "--ram", "1G", "--yes"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    assert json.loads((data / "resources.json").read_text())["cluster_key"] == ""
    daemon = Daemon([SAILOR, "--serve", str(free_port("127.0.0.4")), "--host", "127.0.0.4",
                     "--data", str(data), "--register-interval", "0.2"],
                    crew.root / "keyless.log")
    daemon.start()
    crew.sailors["keyless"] = daemon
    crew.cli_ok("--prereg", "keyless", "127.0.0.4", "services=solo")
    wait_until(lambda: crew.sailor_field("keyless", "status") == "idle", what="keyless up")
    assert "no cluster key" in daemon.log()

    script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    chore_id = crew.submit(script, "service=solo", user=test_user)
    assert crew.wait_chore(chore_id, "done", "failed")["status"] == "done"


def test_the_key_file_is_private_and_shown_to_root_only(crew: Crew, scratch: Path,
                                                        test_user: str):
    path = crew.captain_data / "cluster.key"
    key = path.read_text().strip()
    assert len(key) >= 40

    shown = subprocess.run([CAPTAIN, "--show-key", "--data",
                            str(crew.captain_data)], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and shown.stdout.strip() == key
    refused = crew.cli("--show-key", user=test_user)
    assert refused.returncode != 0 and "root" in refused.stderr
    assert key not in refused.stdout + refused.stderr

    loose = scratch / "loose.key"
    loose.write_text(key)
    loose.chmod(0o644)
    done = subprocess.run([SAILOR, "--data", str(scratch / "s9"), "--captain", "127.0.0.1:1",
                           "--yes", "--cluster-key-file", str(loose)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "chmod 600" in done.stderr
    assert not (scratch / "s9" / "resources.json").exists()


# --- what a chore gets -----------------------------------------------------------------------

HOSTILE_NAMES = [
    "with space.sh",
    "quote'd \"twice\".sh",
    "semi;touch PWNED;.sh",
    "$(touch PWNED).sh",
    "`touch PWNED`.sh",
    "key=value.sh",
    "ünïcödé-名前.sh",
    "-dash.sh",
]


def test_hostile_script_names_run_and_inject_nothing(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2", cpus=2)
    ids = {}
    for name in HOSTILE_NAMES:
        script = write_script(boat, name, 'echo "ran $0" > "$0.ran"\n', owner=test_user)
        ids[name] = crew.submit(script, "service=cpu", user=test_user)

    for name, chore_id in ids.items():
        chore = crew.wait_chore(chore_id, "done", "failed")
        assert chore["status"] == "done", (name, chore)
        assert chore["script"] == str(boat / name)
        assert (boat / f"{name}.ran").read_text() == f"ran {boat / name}\n"
    assert not list(boat.rglob("PWNED")) and not list(Path.cwd().glob("PWNED"))


def test_the_chore_environment_holds_nothing_of_the_sailors(crew: Crew, boat: Path,
                                                            test_user: str,
                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SAILOR_SECRET_MARKER", "leaked-value")
    daemon = crew.add_sailor("s1", "127.0.0.2")
    assert pid_environ(daemon.process.pid).get("SAILOR_SECRET_MARKER") == "leaked-value"
    script = write_script(boat, "env.sh", "env\n", owner=test_user)

    chore_id = crew.submit(script, "service=cpu", user=test_user)
    chore = crew.wait_chore(chore_id, "done")

    printed = Path(chore["stdout"]).read_text()
    variables = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    assert "leaked-value" not in printed
    assert "SAILOR_SECRET_MARKER" not in variables
    assert variables["USER"] == test_user
    assert variables["CAPTAIN_CHORE_ID"] == chore_id
    assert not any("captain" in value.lower() and "key" in name.lower()
                   for name, value in variables.items())


def pid_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_a_link_planted_at_the_output_path_overwrites_nothing(crew: Crew, boat: Path,
                                                              scratch: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    victim = scratch / "root-owned.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    script = write_script(boat, "write.sh", "echo overwritten\necho overwritten >&2\n",
                          owner=test_user)
    next_id = str(len(crew.chores()) + 1)
    for suffix in ("out", "err"):
        link = boat / f"chore-{next_id}.{suffix}"
        link.symlink_to(victim)
        os.lchown(link, pwd.getpwnam(test_user).pw_uid, -1)

    chore_id = crew.submit(script, "service=cpu", user=test_user)
    assert chore_id == next_id
    chore = crew.wait_chore(chore_id, "done", "failed")

    assert chore["status"] == "failed" and chore["exit_code"] == 126, chore
    assert victim.read_text() == "precious\n"
    assert victim.stat().st_uid == 0
    assert (boat / f"chore-{next_id}.out").is_symlink()


# --- files -------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_folders_and_secrets_are_private(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    crew.wait_chore(crew.submit(script, "service=cpu", user=test_user), "done")
    wait_until(lambda: (crew.captain_data / "chores.json").exists(), what="the views")

    data = crew.captain_data
    assert mode(data) == 0o700
    assert mode(data / "cluster.key") == 0o600
    assert mode(data / "log") == 0o700
    logs = list((data / "log").iterdir())
    assert logs and all(mode(path) & 0o077 == 0 for path in logs if path.is_file())
    for view in data.glob("*.json"):
        assert mode(view) & 0o077 == 0, view
    sailor = crew.root / "s1"
    assert mode(sailor) == 0o700
    assert mode(sailor / "resources.json") == 0o600


def test_an_open_captain_folder_is_closed_at_start(scratch: Path):
    folder = scratch / "open"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    crew = Crew(scratch)
    crew.captain_data = folder
    crew.captain = type(crew.captain)(crew._captain_argv(), scratch / "open.log")
    crew.start_captain()
    try:
        assert mode(folder) == 0o700
        assert mode(folder / "cluster.key") == 0o600
    finally:
        crew.stop()
