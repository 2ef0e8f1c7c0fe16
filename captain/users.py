"""The users' limits, set by an admin: how many chores at once, how much run time at once.

A record is created on its first upsert; a later upsert changes only the fields it gives.
The limits are read where they apply: the chores limit when a chore is asked for
(captain/chores.py), the time limit by the housekeeping rounds (captain/limits.py).
"""

import logging
import pwd
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import msgspec

from captain.chores import Caller
from common import messages as msg
from common.refusals import bad_request, forbidden
from common.units import parse_limit
from eventlog import events as ev

if TYPE_CHECKING:
    from captain.core import Captain

log = logging.getLogger(__name__)


def upsert(captain: "Captain", caller: Caller, request: msg.UserUpsertRequest
           ) -> Awaitable[None]:
    """Records a user's new limits; raises Refusal and records nothing if the request is bad."""
    if not caller.is_admin:
        raise forbidden("only root may set users' limits")
    known = captain.state.users.get(str(request.uid))
    name = _name_of(request, known.name if known else None)
    time_limit_s = known.time_limit_s if known else None
    if request.time_limit is None:
        time_limit_s = None
    elif request.time_limit is not msgspec.UNSET:
        try:
            time_limit_s = parse_limit(request.time_limit)
        except ValueError as exc:
            raise bad_request(f"time_limit: {exc}", "time_limit") from None
    chores_limit = known.chores_limit if known else None
    if request.chores_limit is not msgspec.UNSET:
        chores_limit = request.chores_limit
    notes = known.notes if known else ""
    if request.notes is not msgspec.UNSET:
        notes = request.notes
    log.info("captain: user=%s (%d) set time_limit_s=%s chores_limit=%s by user=%s",
             name, request.uid, time_limit_s, chores_limit, caller.name)
    return captain.recorder.record(ev.UserUpserted(
        uid=request.uid, name=name, time_limit_s=time_limit_s, chores_limit=chores_limit,
        notes=notes))


def _name_of(request: msg.UserUpsertRequest, known: str | None) -> str:
    """The name given, else the one recorded, else the one this machine knows the UID by."""
    if request.name is not msgspec.UNSET:
        return request.name
    if known is not None:
        return known
    try:
        return pwd.getpwuid(request.uid).pw_name
    except KeyError:
        raise bad_request(f"uid {request.uid} is not a user of this machine: give its "
                          "name=", "name") from None
