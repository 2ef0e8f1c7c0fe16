"""Scheduling rules on a projected state, with no process: placement, GPUs, fairness, and
the cgroup v2 logic of the sailor against a fake tree."""

import random
from pathlib import Path

import pytest

from captain.scheduler import CrewIndex, Placement, Reservation, Wait, keep_for, place
from eventlog import events as ev
from projections.state import State, apply
from projections.views import sailor_status
from sailor import cgroups

GIB = 2**30


def crew(*sailors: tuple[str, int, list[ev.Gpu]]) -> State:
    state = State()
    events: list[ev.AnyEvent] = []
    for number, (name, cpus, gpus) in enumerate(sailors, start=2):
        events.append(ev.SailorPreregistered(name=name, ip=f"127.0.0.{number}",
                                             services=["cpu"]))
        events.append(ev.SailorRegistered(name=name, port=9000, cpus=cpus,
                                          cores=list(range(cpus)), gpus=gpus, ram=8 * GIB))
    for seq, event in enumerate(events, start=1):
        event.seq = seq
        apply(state, event)
    return state


def ask(state: State, chore_id: str, service: str = "cpu", **resources: object) -> None:
    event = ev.ChoreRequested(chore_id=chore_id, owner=1000, owner_name="u",
                              script="/bin/true", service=service, **resources)  # type: ignore
    event.seq = state.last_seq + 1
    apply(state, event)


def grant(state: State, chore_id: str, placement: Placement) -> None:
    event = ev.ChoreAssigned(chore_id=chore_id, sailor=placement.sailor,
                             cores=placement.cores, gpu_ids=placement.gpu_ids)
    event.seq = state.last_seq + 1
    apply(state, event)


def test_two_one_gpu_chores_get_different_gpus_and_cores():
    state = crew(("g1", 4, [ev.Gpu("A100", 80 * GIB), ev.Gpu("A100", 80 * GIB)]))
    granted = []
    for chore_id in ("1", "2"):
        ask(state, chore_id, gpus=1)
        placement = place(state, state.chores[chore_id])
        assert isinstance(placement, Placement)
        grant(state, chore_id, placement)
        granted.append(placement)
    assert {p.gpu_ids[0] for p in granted} == {0, 1}
    assert not set(granted[0].cores) & set(granted[1].cores)

    ask(state, "3", gpus=1)
    assert place(state, state.chores["3"]) == Wait("no available sailor")
    assert sailor_status(state.sailors["g1"]) == "busy"  # GPUs all taken, cores free


def test_gpu_model_and_vram_choose_the_sailor():
    state = crew(("old", 4, [ev.Gpu("V100", 16 * GIB)]),
                 ("new", 4, [ev.Gpu("A100", 80 * GIB)]))
    ask(state, "1", gpus=1, gpu_type="A100")
    ask(state, "2", gpus=1, vram=40 * GIB)
    ask(state, "3", gpus=1, gpu_type="V100")
    ask(state, "4", gpus=1, gpu_type="H100")
    placements = {c: place(state, state.chores[c]) for c in ("1", "2", "3", "4")}
    assert placements["1"].sailor == "new"  # type: ignore[union-attr]
    assert placements["2"].sailor == "new"  # type: ignore[union-attr]
    assert placements["3"].sailor == "old"  # type: ignore[union-attr]
    assert isinstance(placements["4"], Wait)


def test_full_means_no_free_core():
    state = crew(("s1", 2, []))
    assert sailor_status(state.sailors["s1"]) == "idle"
    ask(state, "1", cpus=1)
    grant(state, "1", place(state, state.chores["1"]))  # type: ignore[arg-type]
    assert sailor_status(state.sailors["s1"]) == "busy"
    ask(state, "2", cpus=1)
    grant(state, "2", place(state, state.chores["2"]))  # type: ignore[arg-type]
    assert sailor_status(state.sailors["s1"]) == "full"


def test_a_kept_sailor_takes_no_later_chore():
    """The big chore waits for both cores of s1; a small chore may not take the free one."""
    state = crew(("s1", 2, []), ("s2", 1, []))
    ask(state, "1", cpus=1)
    grant(state, "1", Placement("s1", [0], []))
    ask(state, "2", cpus=1)
    grant(state, "2", Placement("s2", [0], []))
    ask(state, "3", cpus=2)
    ask(state, "4", cpus=1)

    big = state.chores["3"]
    assert isinstance(place(state, big), Wait)
    reservation = keep_for(state, big)
    assert reservation == Reservation("3", "s1")

    small = state.chores["4"]
    assert place(state, small).sailor == "s1"  # type: ignore[union-attr]
    assert place(state, small, reservation=reservation) == Wait(
        "sailor s1 is kept for older chore 3")


def test_keep_for_picks_the_sailor_closest_to_fitting():
    state = crew(("a", 4, []), ("b", 4, []))
    grant_cores = {"a": [0, 1, 2], "b": [0]}
    for number, (name, cores) in enumerate(grant_cores.items(), start=1):
        ask(state, str(number), cpus=len(cores))
        grant(state, str(number), Placement(name, cores, []))
    ask(state, "9", cpus=4)
    assert keep_for(state, state.chores["9"]) == Reservation("9", "b")
    assert keep_for(state, state.chores["9"], passed_over=frozenset({"b"})) == Reservation(
        "9", "a")


def fake_v2_tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "cgroup"
    base = root / "system.slice" / "sailor.service"
    base.mkdir(parents=True)
    (base / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (base / "cgroup.procs").write_text("4242\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/system.slice/sailor.service\n")
    return root, base, proc


def random_crew(rng: random.Random) -> State:
    """Sailors of one, two or both services, some down, some not registered yet."""
    state = State()
    events: list[ev.AnyEvent] = []
    for number in range(rng.randint(1, 12)):
        name = f"s{number}"
        services = rng.choice([["cpu"], ["gpu"], ["cpu", "gpu"]])
        events.append(ev.SailorPreregistered(name=name, ip=f"127.0.1.{number + 1}",
                                             services=services))
        if rng.random() < 0.1:
            continue
        cpus = rng.randint(1, 8)
        gpus = [ev.Gpu(rng.choice(["A100", "T4"]), rng.choice([16, 80]) * GIB)
                for _ in range(rng.randint(0, 3))]
        events.append(ev.SailorRegistered(name=name, port=9000, cpus=cpus,
                                          cores=list(range(cpus)), gpus=gpus, ram=8 * GIB))
        if rng.random() < 0.15:
            events.append(ev.SailorWentDown(name=name, silent_s=10.0))
    for event in events:
        event.seq = state.last_seq + 1
        apply(state, event)
    return state


@pytest.mark.parametrize("draw", range(40))
def test_the_crew_index_places_every_chore_where_a_look_at_every_sailor_would(draw: int):
    rng = random.Random(draw)
    state = random_crew(rng)
    index = CrewIndex(state)
    names = list(state.sailors)
    for number in range(1, 40):
        chore_id = str(number)
        asked: dict[str, object] = {"service": rng.choice(["cpu", "gpu"]),
                                    "cpus": rng.randint(1, 4)}
        if rng.random() < 0.3:
            asked["gpus"] = rng.randint(1, 2)
            if rng.random() < 0.5:
                asked["gpu_type"] = rng.choice(["A100", "T4"])
        if rng.random() < 0.2:
            asked["ram"] = rng.choice([1, 4]) * GIB
        ask(state, chore_id, **asked)
        chore = state.chores[chore_id]
        passed_over = frozenset(rng.sample(names, k=min(len(names), rng.randint(0, 2))))
        reservation = (Reservation("0", rng.choice(names)) if rng.random() < 0.3 else None)

        everyone = place(state, chore, passed_over, reservation)
        indexed = place(state, chore, passed_over, reservation, index)

        assert indexed == everyone, (draw, chore_id, asked)
        if isinstance(everyone, Placement):
            grant(state, chore_id, everyone)
            index.changed(everyone.sailor)


def test_v2_chore_groups_go_under_the_sailors_own_group(tmp_path: Path):
    root, base, proc = fake_v2_tree(tmp_path)

    leaf = cgroups.settle_daemon(root, proc)
    assert leaf == base / cgroups.DAEMON_LEAF
    assert (leaf / "cgroup.procs").read_text() == "4242"

    proc.write_text(f"0::/system.slice/sailor.service/{cgroups.DAEMON_LEAF}\n")
    groups = cgroups.chore_groups("tag-7", root, proc)
    assert groups == {"v2": base / "captain" / "tag-7"}

    assert cgroups.create(groups, 64 * 2**20) == "cgroup"
    assert (base / "captain" / "tag-7" / "memory.max").read_text() == str(64 * 2**20)
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (base / "captain" / "cgroup.subtree_control").read_text() == "+memory +pids"

    (base / "captain" / "tag-7" / "memory.events").write_text("low 0\noom 1\noom_kill 1\n")
    assert cgroups.out_of_memory(groups)


def test_v2_without_the_memory_controller_is_not_used(tmp_path: Path):
    root, base, proc = fake_v2_tree(tmp_path)
    (base / "cgroup.controllers").write_text("cpu io\n")
    assert cgroups.settle_daemon(root, proc) is None
    assert "v2" not in cgroups.chore_groups("tag-8", root, proc)
