"""The crew list and what sailors tell the captain: register, awake, report.

A sailor is known by its address alone: a call from an address that is not in the crew list
is refused and changes nothing.
"""

import ipaddress
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from captain.chores import Caller
from common import messages as msg
from common.refusals import Refusal, bad_request, forbidden, not_found
from common.units import parse_limit
from eventlog import events as ev
from projections.state import SailorState

if TYPE_CHECKING:
    from captain.core import Captain

log = logging.getLogger(__name__)

CANCELED_BY_ADMIN = "canceled by admin"


def check_ip(text: str) -> str:
    """A sailor's address: one machine's, so not 0.0.0.0, a broadcast or a multicast one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise bad_request(f"'{text}' is not an IP address", "ip") from None
    if address.is_unspecified or address.is_multicast or str(address) == "255.255.255.255":
        raise bad_request(f"{address} is not the address of one machine", "ip")
    return str(address)


def prereg(captain: "Captain", caller: Caller, request: msg.PreregRequest) -> Awaitable[None]:
    if not caller.is_admin:
        raise forbidden("only root may change the crew list")
    event = _preregistration(captain, request, {}, {})
    log.info("captain: sailor=%s preregistered at %s services=%s", event.name, event.ip,
             ",".join(event.services))
    return captain.recorder.record(event)


def prereg_crew(captain: "Captain", caller: Caller, request: msg.CrewListRequest
                ) -> Awaitable[None]:
    """Preregisters a whole crew list at once, or nothing when any entry is wrong."""
    if not caller.is_admin:
        raise forbidden("only root may change the crew list")
    events: list[ev.AnyEvent] = []
    problems: list[dict[str, object]] = []
    names: dict[str, int] = {}
    ips: dict[str, int] = {}
    for index, entry in enumerate(request.sailors):
        try:
            event = _preregistration(captain, entry, names, ips)
        except Refusal as refusal:
            problems.append({"index": index, **refusal.body()})
            continue
        names[event.name], ips[event.ip] = index, index
        events.append(event)
    if problems:
        raise Refusal(400, f"{len(problems)} of {len(request.sailors)} entries are wrong; "
                           "nothing was preregistered", extra={"problems": problems})
    log.info("captain: %d sailors preregistered from a crew list", len(events))
    return captain.recorder.record(*events)


def _preregistration(captain: "Captain", request: msg.PreregRequest, names: dict[str, int],
                     ips: dict[str, int]) -> ev.SailorPreregistered:
    """The event that adds this sailor, after checking it against the crew list and the
    entries before it in the same list (`names`, `ips`: their index)."""
    state = captain.state
    ip = check_ip(request.ip)
    if request.name in state.sailors:
        raise Refusal(409, f"sailor '{request.name}' is already in the crew list "
                           "(change it with --sailor-set)", "name")
    if request.name in names:
        raise Refusal(409, f"sailor '{request.name}' is listed twice", "name")
    owner = state.sailor_at(ip)
    if owner is not None:
        raise Refusal(409, f"address {ip} already belongs to sailor '{owner.name}'", "ip")
    if ip in ips:
        raise Refusal(409, f"address {ip} is listed twice", "ip")
    return ev.SailorPreregistered(name=request.name, ip=ip, services=list(request.services),
                                  max_time_s=_parse_max_time(request.max_time))


def _parse_max_time(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_limit(text)
    except ValueError as exc:
        raise bad_request(f"max_time: {exc}", "max_time") from None


def sailor_set(captain: "Captain", caller: Caller, request: msg.SailorSetRequest
               ) -> Awaitable[None]:
    """Changes a sailor's address, services or max_time; what is left out stays.

    A new max_time applies at once to the captain's own check; a chore already running
    keeps the deadline its sailor got with it, so a raised limit does not save that chore.
    """
    if not caller.is_admin:
        raise forbidden("only root may change the crew list")
    sailor = captain.state.sailors.get(request.name)
    if sailor is None:
        raise not_found(f"no sailor '{request.name}' in the crew list", "name")
    ip = sailor.ip if request.ip is None else check_ip(request.ip)
    owner = captain.state.sailor_at(ip)
    if owner is not None and owner.name != sailor.name:
        raise Refusal(409, f"address {ip} already belongs to sailor '{owner.name}'", "ip")
    services = sailor.services if request.services is None else list(request.services)
    max_time_s = sailor.max_time_s
    if request.max_time is not None:
        max_time_s = _parse_max_time(request.max_time)
    log.info("captain: sailor=%s set ip=%s services=%s max_time_s=%s by user=%s",
             sailor.name, ip, ",".join(services), max_time_s, caller.name)
    return captain.recorder.record(ev.SailorUpdated(
        name=sailor.name, ip=ip, services=services, max_time_s=max_time_s))


def sailor_remove(captain: "Captain", caller: Caller, request: msg.SailorRemoveRequest
                  ) -> Awaitable[None]:
    """Takes a sailor off the crew list; with `force`, its chores are canceled first.

    Chores that run on it, or wait for it by name, hold the removal back unless forced. A
    forced removal ends them at once as canceled (the sailor can no longer report once it is
    off the list) and tells the sailor to stop those it runs. That message is sent once: a
    sailor unreachable then keeps running them until it is added back and registers.
    """
    if not caller.is_admin:
        raise forbidden("only root may change the crew list")
    state = captain.state
    sailor = state.sailors.get(request.name)
    if sailor is None:
        raise not_found(f"no sailor '{request.name}' in the crew list", "name")
    held = [c for c in state.chores.values() if c.status in ev.ACTIVE_STATUSES and (
        c.sailor == sailor.name or (c.status == "pending" and c.sailor_asked == sailor.name))]
    if held and not request.force:
        ids = ", ".join(sorted((c.chore_id for c in held), key=int))
        raise Refusal(409, f"sailor '{sailor.name}' has active chores ({ids}); cancel them "
                           "first or remove it with --force", "name")
    on_board = [c.chore_id for c in held if c.sailor == sailor.name]
    address = (sailor.ip, sailor.port)
    events: list[ev.AnyEvent] = [
        ev.ChoreEnded(chore_id=c.chore_id, status="canceled", reason=CANCELED_BY_ADMIN)
        for c in held]
    events.append(ev.SailorRemoved(name=sailor.name, by=caller.uid))
    log.info("captain: sailor=%s removed by user=%s, canceled chores=%s", sailor.name,
             caller.name, [c.chore_id for c in held])
    durable = captain.recorder.record(*events)
    if on_board and sailor.registered:
        captain.dispatcher.cancel_at(address, on_board, CANCELED_BY_ADMIN)
    return durable


def sailor_calling(captain: "Captain", ip: str) -> SailorState:
    sailor = captain.state.sailor_at(ip)
    if sailor is None:
        log.warning("captain: refused a sailor call from %s: not in the crew list", ip)
        raise forbidden(f"address {ip} is not in the crew list")
    return sailor


def register(captain: "Captain", ip: str, request: msg.SailorRegisterRequest
             ) -> tuple[msg.SailorAnswer, Awaitable[None]]:
    """A sailor woke up: record what it has, and settle what it runs against the log."""
    sailor = sailor_calling(captain, ip)
    if not set(request.cores) or len(set(request.cores)) < request.cpus:
        raise bad_request("cores must list at least cpus distinct core ids", "cores")
    state = captain.state
    running = set(request.running)
    lost = [c for c in sailor.chores
            if state.chores[c].status == "running" and c not in running]
    kill = [c for c in request.running if not _runs_on(captain, c, sailor.name)]
    events: list[ev.AnyEvent] = [ev.SailorRegistered(
        name=sailor.name, port=request.port, cpus=request.cpus, cores=request.cores[:request.cpus],
        gpus=[ev.Gpu(g.type, g.vram) for g in request.gpus], ram=request.ram,
        running=request.running)]
    events += [ev.ChoreEnded(chore_id=c, status="failed", reason="sailor lost") for c in lost]
    captain.saw_sailor(sailor.name)
    log.info("captain: sailor=%s registered from %s:%d cpus=%d gpus=%d ram=%d lost=%s kill=%s",
             sailor.name, ip, request.port, request.cpus, len(request.gpus), request.ram,
             lost, kill)
    return msg.SailorAnswer(ok=True, kill=kill), captain.recorder.record(*events)


def awake(captain: "Captain", ip: str, request: msg.SailorAwakeRequest) -> msg.SailorAnswer:
    """A sailor's periodic 'still here': refreshes its last-seen time, records nothing."""
    sailor = sailor_calling(captain, ip)
    if not (sailor.registered and sailor.up) or sailor.port != request.port:
        return msg.SailorAnswer(ok=False, registered=False, reason="register again")
    captain.saw_sailor(sailor.name)
    kill = [c for c in request.running if not _runs_on(captain, c, sailor.name)]
    kill += [c for c in sailor.chores
             if captain.state.chores[c].cancel_reason is not None and c not in kill]
    return msg.SailorAnswer(ok=True, kill=kill)


def _runs_on(captain: "Captain", chore_id: str, sailor: str) -> bool:
    chore = captain.state.chores.get(chore_id)
    return (chore is not None and chore.sailor == sailor
            and chore.status in ("assigned", "running"))


def report(captain: "Captain", ip: str, request: msg.SailorReportRequest
           ) -> tuple[msg.SailorReportAnswer, Awaitable[None]]:
    """Chore changes seen by a sailor. A report already applied changes nothing."""
    sailor = sailor_calling(captain, ip)
    captain.saw_sailor(sailor.name)
    events: list[ev.AnyEvent] = []
    kill: list[str] = []
    for item in request.reports:
        chore = captain.state.chores.get(item.chore_id)
        if chore is None or chore.sailor != sailor.name or chore.status not in (
            "assigned", "running"
        ):
            if item.status == "running":
                kill.append(item.chore_id)
            continue
        if item.status == "running":
            if chore.status == "assigned":
                events.append(ev.ChoreStarted(
                    chore_id=item.chore_id, sailor=sailor.name, pid=item.pid or 0,
                    memory_limit=item.memory_limit))
            continue
        events.append(_ended(chore.cancel_reason, item))
        log.info("captain: chore=%s %s on sailor=%s (exit=%s signal=%s)", item.chore_id,
                 item.status, sailor.name, item.exit_code, item.signal)
    acked = [item.chore_id for item in request.reports]
    return msg.SailorReportAnswer(acked=acked, kill=kill), captain.recorder.record(*events)


def _ended(cancel_reason: str | None, item: msg.ChoreReport) -> ev.ChoreEnded:
    status = item.status
    reason = item.reason
    if status == "canceled":
        reason = cancel_reason or reason or "canceled"
    elif status == "done":
        reason = reason or "exit code 0"
    elif not reason:
        reason = (f"killed by signal {item.signal}" if item.signal is not None
                  else f"exit code {item.exit_code}")
    assert status != "running"
    return ev.ChoreEnded(chore_id=item.chore_id, status=status, reason=reason,
                         exit_code=item.exit_code, signal=item.signal)
