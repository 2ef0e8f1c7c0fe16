"""What users ask of their chores: request, consult, cancel. Checks first, then one event."""

import logging
import os
import stat
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import msgspec

from captain.scheduler import candidates, could_ever_fit
from common import messages as msg
from common.refusals import Refusal, bad_request, forbidden, not_found
from eventlog import events as ev
from projections.state import ChoreState

if TYPE_CHECKING:
    from captain.core import Captain

log = logging.getLogger(__name__)

ROOT_UID = 0


class Caller(msgspec.Struct, frozen=True):
    """Who asks, as the kernel (or a web login) told the captain."""

    uid: int
    name: str

    @property
    def is_admin(self) -> bool:
        return self.uid == ROOT_UID


Recorded = tuple[ChoreState, Awaitable[None]]


def request_chore(captain: "Captain", caller: Caller, request: msg.ChoreRequest) -> Recorded:
    """Checks a chore request and records it; raises Refusal and records nothing if bad.

    Returns the chore and an awaitable that completes once the request is durable.
    """
    state = captain.state
    _check_target(captain, request)
    _check_script(request.script)
    if caller.uid == ROOT_UID and not captain.settings.allow_root_chores:
        raise forbidden("chores do not run as root on this captain (an admin may allow it "
                        "with 'captain --serve ... --allow-root-chores')")
    chore = ChoreState(
        chore_id="0", owner=caller.uid, owner_name=caller.name, script=request.script,
        service=request.service, sailor_asked=request.sailor, cpus=request.cpus,
        gpus=request.gpus, gpu_type=request.gpu_type, vram=request.vram, ram=request.ram,
    )
    _check_fits_somewhere(captain, chore)
    _check_user_limits(captain, caller)
    chore_id = str(state.last_chore_number + 1)
    durable = captain.recorder.record(ev.ChoreRequested(
        chore_id=chore_id, owner=caller.uid, owner_name=caller.name, script=request.script,
        service=request.service, sailor=request.sailor, cpus=request.cpus, gpus=request.gpus,
        gpu_type=request.gpu_type, vram=request.vram, ram=request.ram,
    ))
    log.info("captain: chore=%s requested by user=%s (%d) script=%s", chore_id, caller.name,
             caller.uid, request.script)
    return state.chores[chore_id], durable


def _check_target(captain: "Captain", request: msg.ChoreRequest) -> None:
    state = captain.state
    if request.vram is not None and request.gpus == 0:
        raise bad_request("vram= is memory per GPU: it needs gpus=N", "vram")
    if (request.service is None) == (request.sailor is None):
        raise bad_request("give either service=NAME or sailor=NAME (exactly one)", "service")
    if request.sailor is not None and request.sailor not in state.sailors:
        raise not_found(f"unknown sailor '{request.sailor}'", "sailor")
    if request.service is not None and not any(
        request.service in s.services for s in state.sailors.values()
    ):
        known = sorted({svc for s in state.sailors.values() for svc in s.services})
        raise not_found(f"unknown service '{request.service}' (known: "
                        f"{', '.join(known) or 'none'})", "service")


def _check_script(script: str) -> None:
    if not os.path.isabs(script):
        raise bad_request(f"script must be an absolute path, got '{script}'", "script")
    try:
        mode = os.stat(script).st_mode
    except (OSError, ValueError):  # missing, unreadable, or a name with a NUL in it
        mode = 0
    if not stat.S_ISREG(mode):
        raise bad_request(f"script '{script}' does not exist or is not a file", "script")
    if not mode & 0o111:
        raise bad_request(f"script '{script}' is not executable (chmod +x it)", "script")


def _check_fits_somewhere(captain: "Captain", chore: ChoreState) -> None:
    sailors = candidates(captain.state, chore)
    if any(could_ever_fit(s, chore) for s in sailors):
        return
    where = f"sailor {chore.sailor_asked}" if chore.sailor_asked else f"service {chore.service}"
    most_cpus = max((s.cpus for s in sailors), default=0)
    most_gpus = max((len(s.gpus) for s in sailors), default=0)
    if chore.cpus > most_cpus:
        raise bad_request(f"cpus={chore.cpus}: no sailor of {where} has more than "
                          f"{most_cpus} cores", "cpus")
    if chore.gpus > most_gpus or chore.gpu_type or chore.vram:
        raise bad_request(f"gpus={chore.gpus}: no sailor of {where} has that many GPUs of "
                          f"the asked kind (the most is {most_gpus})", "gpus")
    raise bad_request(f"ram={chore.ram}: no sailor of {where} has that much memory", "ram")


def _check_user_limits(captain: "Captain", caller: Caller) -> None:
    user = captain.state.users.get(str(caller.uid))
    if user is None or user.chores_limit is None:
        return
    active = len(captain.state.active_chores_of(caller.uid))
    if active >= user.chores_limit:
        raise Refusal(429, f"user chores limit reached ({active} active of "
                           f"{user.chores_limit} allowed)")


def visible_chore(captain: "Captain", caller: Caller, chore_id: str) -> ChoreState:
    chore = captain.state.chores.get(chore_id)
    if chore is None:
        raise not_found(f"no chore {chore_id} (ended chores leave the list after a while; "
                        "see 'captain --history')", "chore_id")
    if chore.owner != caller.uid and not caller.is_admin:
        raise forbidden(f"chore {chore_id} belongs to another user")
    return chore


def cancel_chore(captain: "Captain", caller: Caller, chore_id: str) -> Recorded:
    """Cancels a chore: at once when pending, through its sailor when it runs."""
    chore = visible_chore(captain, caller, chore_id)
    if chore.status in ev.ENDED_STATUSES:
        raise Refusal(409, f"chore {chore_id} already ended ({chore.status})")
    reason = "canceled by user" if chore.owner == caller.uid else "canceled by admin"
    recorder = captain.recorder
    if chore.status == "pending":
        durable = recorder.record(
            ev.ChoreEnded(chore_id=chore_id, status="canceled", reason=reason))
    else:
        durable = recorder.record(
            ev.ChoreCancelRequested(chore_id=chore_id, reason=reason, by=caller.uid))
        if chore.status == "running" and chore.sailor is not None:
            captain.dispatcher.cancel_later(chore_id, chore.sailor, reason)
    log.info("captain: chore=%s cancel asked by user=%s (%s)", chore_id, caller.name, reason)
    return chore, durable
