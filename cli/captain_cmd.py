"""The `captain` command: serves the captain, or asks it something as the calling user.

Every client command is a call to one endpoint; the answer is shown as a table, or printed
exactly as the endpoint returned it when `--json` is given. With `--json` every failure,
the command's own included, is also a JSON object `{"error": ..., "field": ...}` on stdout.
Only what a command needs is imported: the server's libraries never load for a client
command.
"""

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from cli import arguments, client, web_options
from cli.client import Answer, CaptainUnreachable, call, captain_address

# Each command is one option; the order is the one the usage error lists them in.
COMMANDS = ("--serve", "--chore", "--consult", "--cancel", "--prereg", "--crew", "--sailor-set",
            "--sailor-remove", "--users", "--user-set", "--watch", "--history", "--check-log",
            "--show-key")
TAKING_WORDS = ("--chore", "--prereg", "--sailor-set", "--user-set", "--watch", "--history")


def _json_wanted() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.params.get("as_json"))


def fail(message: str, field: str | None = None) -> NoReturn:
    client.fail(message, field, as_json=_json_wanted())


def _fail_usage(exc: click.ClickException) -> NoReturn:
    """A usage mistake under --json: the JSON object, then click's usual text on stderr."""
    param = getattr(exc, "param", None)
    field = param.opts[0].lstrip("-") if param is not None and param.opts else None
    client.print_refusal(exc.format_message(), field)
    exc.show()
    sys.exit(exc.exit_code)


class _Command(click.Command):
    """The click command, whose usage errors are JSON objects too when --json is given."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        wants_json = "--json" in args
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            if not wants_json:
                raise
            _fail_usage(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if not ctx.params.get("as_json"):
                raise
            _fail_usage(exc)


class Request:
    def __init__(self, port: int | None, as_json: bool) -> None:
        self.address = captain_address(port)
        self.as_json = as_json

    def send(self, method: str, path: str, body: Any = None) -> Any:
        """Calls the endpoint; on a refusal prints why and exits non-zero."""
        try:
            answer: Answer = call(self.address, method, path, body)
        except CaptainUnreachable as exc:
            fail(str(exc))
        if self.as_json:
            client.print_answer(answer)
        if not answer.ok:
            fail(answer.error())
        return answer.json()


@click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("words", nargs=-1)
@click.option("--serve", "serve_port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Run the captain daemon on PORT.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, readable=False),
              help="The captain's data folder (default: CAPTAIN_DATA, else data/captain in "
                   "the folder Captain is installed in).")
@click.option("--allow-root-chores", is_flag=True,
              help="With --serve: let root's chores run as root.")
@click.option("--show-key", is_flag=True,
              help="Print the cluster key that each sailor's first run asks for (root only).")
@web_options.https_options
@click.option("--down-after", type=float, default=10.0, show_default=True, metavar="S",
              help="With --serve: seconds without news before a sailor is down.")
@click.option("--retention", type=float, default=120.0, show_default=True, metavar="S",
              help="With --serve: seconds an ended chore stays in the views.")
@click.option("--order-timeout", type=float, default=5.0, show_default=True, metavar="S",
              help="With --serve: seconds a sailor has to take a chore.")
@click.option("--reserve-after", type=click.FloatRange(0), default=60.0, show_default=True,
              metavar="S", help="With --serve: seconds a chore waits before a sailor is kept "
                                "for it.")
@click.option("--chore", "do_chore", is_flag=True,
              help="Ask for a chore: script=PATH (service=NAME | sailor=NAME) [cpus=N] "
                   "[gpus=N|TYPE:N] [ram=SIZE] [vram=SIZE].")
@click.option("--consult", "do_consult", is_flag=True, help="List your chores.")
@click.option("--all", "everyone", is_flag=True, help="With --consult: everyone's (root only).")
@click.option("--cancel", "cancel_id", metavar="CHORE_ID", help="Cancel one of your chores.")
@click.option("--prereg", "do_prereg", is_flag=True,
              help="Add a sailor to the crew list: NAME IP [services=S1,S2] "
                   "[max_time=DD-hh:mm:ss], or a whole crew list with --file.")
@click.option("--file", "crew_file", type=click.Path(dir_okay=False), metavar="CREW",
              help="With --prereg: a crew list, one 'sailor=NAME IP=ADDR [services=..] "
                   "[max_time=..]' a line; all of it or, if a line is wrong, nothing.")
@click.option("--crew", "do_crew", is_flag=True, help="Show the crew and its state.")
@click.option("--sailor-set", "do_sailor_set", is_flag=True,
              help="Change a sailor (root only): name=NAME [ip=IP] [services=S1,S2] "
                   "[max_time=DD-hh:mm:ss|none].")
@click.option("--sailor-remove", "remove_name", metavar="NAME",
              help="Take a sailor off the crew list (root only).")
@click.option("--force", is_flag=True,
              help="With --sailor-remove: cancel the chores it runs or that wait for it.")
@click.option("--users", "do_users", is_flag=True, help="Show the users' limits.")
@click.option("--user-set", "do_user_set", is_flag=True,
              help="Set a user's limits (root only): uid=UID [name=NAME] "
                   "[time_limit=DD-hh:mm:ss|none] [chores_limit=N|none] [notes=TEXT].")
@click.option("--watch", "do_watch", is_flag=True,
              help="Follow the events live until Ctrl-C, or with chore=ID until it ends: "
                   "[chore=ID] [sailor=NAME] [user=NAME].")
@click.option("--history", "do_history", is_flag=True,
              help="The story of a chore: [CHORE_ID]; without one, the latest events.")
@click.option("--limit", type=click.IntRange(1, 10_000), metavar="N",
              help="With --history and no chore: how many events (default 100).")
@click.option("--at", metavar="TIME",
              help="With --crew or --consult: the view as it was then (ISO time or epoch s).")
@click.option("--check-log", "do_check_log", is_flag=True,
              help="Check every line of the event log in --data (no captain needed).")
@click.option("--snapshot-every", type=click.IntRange(0), default=50_000, show_default=True,
              metavar="N", help="With --serve: events between snapshots of the state (0: none).")
@click.option("--port", type=click.IntRange(1, 65535), envvar="CAPTAIN_PORT",
              help="Where the captain listens (default: CAPTAIN_PORT, else the port this "
                   "machine's captain published, else 8750).")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's JSON answer.")
def main(words: tuple[str, ...], do_watch: bool, do_history: bool, limit: int | None,
         at: str | None, do_check_log: bool, snapshot_every: int, reserve_after: float,
         serve_port: int | None, host: str, data_dir: Path | None,
         allow_root_chores: bool, show_key: bool, down_after: float, retention: float,
         order_timeout: float,
         do_chore: bool, do_consult: bool, everyone: bool, cancel_id: str | None,
         do_prereg: bool, do_crew: bool, do_sailor_set: bool, remove_name: str | None,
         force: bool, do_users: bool, do_user_set: bool, port: int | None,
         as_json: bool, crew_file: str | None) -> None:
    """Captain: the head of a crew of sailors that run chores."""
    command = _chosen_command(words, [
        serve_port is not None, do_chore, do_consult, cancel_id is not None, do_prereg,
        do_crew, do_sailor_set, remove_name is not None, do_users, do_user_set, do_watch,
        do_history, do_check_log, show_key])
    _check_companions(command, at=at, everyone=everyone, force=force, limit=limit,
                      crew_file=crew_file)
    if show_key:
        sys.exit(_show_key(data_dir, as_json))
    if do_watch or do_history or do_check_log:
        sys.exit(_read_log(do_watch, do_history, words, limit, data_dir, port, as_json))
    if serve_port is not None:
        sys.exit(_serve(serve_port, host, data_dir, allow_root_chores, down_after, retention,
                        order_timeout, snapshot_every=snapshot_every,
                        reserve_after=reserve_after))
    request = Request(port, as_json)
    try:
        if do_chore:
            _chore(request, words)
        elif do_consult:
            _consult(request, everyone, at)
        elif cancel_id is not None:
            _cancel(request, cancel_id)
        elif do_prereg:
            _prereg(request, words, crew_file)
        elif do_crew:
            from cli import render

            render.crew(request.send("GET", _at("/crew", at)))
        elif do_sailor_set:
            _sailor_set(request, words)
        elif remove_name is not None:
            _sailor_remove(request, remove_name, force)
        elif do_users:
            from cli import render

            render.users(request.send("GET", "/users"))
        elif do_user_set:
            _user_set(request, words)
    except arguments.BadArguments as exc:
        fail(str(exc), exc.field)


def _chosen_command(words: tuple[str, ...], given: list[bool]) -> str:
    """The one command given (flags in the order of COMMANDS); refuses stray words."""
    chosen = [name for name, is_given in zip(COMMANDS, given, strict=True) if is_given]
    if len(chosen) != 1:
        raise click.UsageError(f"choose one of {', '.join(COMMANDS)}")
    command = chosen[0]
    if words and command not in TAKING_WORDS:
        raise click.UsageError(f"unexpected words for {command} (it takes none): "
                               f"{' '.join(words)}")
    return command


def _check_companions(command: str, *, at: str | None, everyone: bool, force: bool,
                      limit: int | None, crew_file: str | None = None) -> None:
    """Refuses an option given with a command it does nothing for."""
    if at is not None and command not in ("--crew", "--consult"):
        raise click.UsageError("--at goes with --crew or --consult")
    if everyone and command != "--consult":
        raise click.UsageError("--all goes with --consult")
    if force and command != "--sailor-remove":
        raise click.UsageError("--force goes with --sailor-remove")
    if limit is not None and command != "--history":
        raise click.UsageError("--limit goes with --history")
    if crew_file is not None and command != "--prereg":
        raise click.UsageError("--file goes with --prereg")


def _show_key(data_dir: Path | None, as_json: bool) -> int:
    """Prints the key the captain made at its first start; reading it needs root."""
    import os

    from captain.cluster_key import key_path
    from captain.settings import default_data_dir
    from common.signing import read_key_file

    if os.geteuid() != 0:
        fail("only root may show the cluster key")
    path = key_path((data_dir or default_data_dir("captain")).resolve())
    if not path.exists():
        fail(f"no cluster key at {path}: the captain makes it at its first start "
             "(captain --serve PORT); give --data when its data folder is not the default")
    try:
        key = read_key_file(path)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"cluster_key": key}, separators=(",", ":")))
    else:
        click.echo(key)
    return 0


def _serve(port: int, host: str, data_dir: Path | None, allow_root_chores: bool,
           down_after: float, retention: float, order_timeout: float,
           snapshot_every: int = 50_000, reserve_after: float = 60.0) -> int:
    import msgspec

    from captain.server import serve
    from captain.settings import CaptainSettings, default_data_dir

    settings = CaptainSettings(
        data_dir=(data_dir or default_data_dir("captain")).resolve(), host=host, port=port,
        allow_root_chores=allow_root_chores, down_after_s=down_after, retention_s=retention,
        order_timeout_s=order_timeout, snapshot_every=snapshot_every,
        reserve_after_s=reserve_after,
    )
    settings = msgspec.structs.replace(settings, **web_options.https_settings(port, host))
    return serve(settings)


def _chore(request: Request, words: tuple[str, ...]) -> None:
    from cli import render

    record = request.send("POST", "/user_chore", arguments.chore_body(words))
    click.echo(f"chore {record['chore_id']} asked for ({record['status']}: {record['reason']})")
    render.chore(record, f"chore {record['chore_id']}")


def _consult(request: Request, everyone: bool, at: str | None) -> None:
    from cli import render

    path = "/user_consult?all=1" if everyone else "/user_consult"
    view = request.send("GET", _at(path, at))
    title = "all chores" if everyone else "your chores"
    render.chores(view, title if at is None else f"{title} at {at}")


def _at(path: str, at: str | None) -> str:
    from cli.log_cmds import at_query

    query = at_query(at)
    if not query:
        return path
    return path + ("&" if "?" in path else "?") + query


def _read_log(do_watch: bool, do_history: bool, words: tuple[str, ...], limit: int | None,
              data_dir: Path | None, port: int | None, as_json: bool) -> int:
    """--watch, --history and --check-log: the commands that read the event log."""
    from cli import log_cmds

    try:
        if do_watch:
            log_cmds.watch(captain_address(port), words, as_json)
            return 0
        if do_history:
            request = Request(port, as_json)
            path = log_cmds.history_path(words, limit)
            log_cmds.print_history(request.send("GET", path), words[0] if words else None)
            return 0
        return log_cmds.check_log(data_dir, as_json)
    except arguments.BadArguments as exc:
        fail(str(exc), exc.field)


def _cancel(request: Request, chore_id: str) -> None:
    if not chore_id.isdecimal():
        raise arguments.BadArguments(f"a chore id is a number, got '{chore_id}'", "chore_id")
    record = request.send("POST", "/user_cancel", {"chore_id": chore_id})
    click.echo(f"chore {chore_id}: cancel asked ({record['status']}: {record['reason']})")


def _prereg(request: Request, words: tuple[str, ...], crew_file: str | None) -> None:
    if crew_file is not None:
        _prereg_crew(request, words, crew_file)
        return
    sailor = request.send("POST", "/prereg", arguments.prereg_body(words))
    click.echo(f"sailor {sailor['name']} ({sailor['ip']}) is in the crew list, services "
               f"{','.join(sailor['services']) or 'none'}")


def _prereg_crew(request: Request, words: tuple[str, ...], crew_file: str) -> None:
    """The whole crew list at once: a wrong entry (here or at the captain) is reported with
    its line number, and then nothing is preregistered."""
    if words:
        raise arguments.BadArguments(f"--prereg --file takes no other words: {' '.join(words)}")
    body, numbers = arguments.crew_file_body(crew_file)
    try:
        answer = call(request.address, "POST", "/prereg_crew", body)
    except CaptainUnreachable as exc:
        fail(str(exc))
    if request.as_json:
        client.print_answer(answer)
    refusal = answer.json() if not answer.ok else None
    if isinstance(refusal, dict) and isinstance(refusal.get("problems"), list):
        lines = [f"{crew_file}:{numbers[p['index']]}: {p['error']}"
                 for p in refusal["problems"] if 0 <= p.get("index", -1) < len(numbers)]
        fail("nothing was preregistered:\n" + "\n".join(lines))
    if not answer.ok:
        fail(answer.error())
    for sailor in answer.json().values():
        click.echo(f"sailor {sailor['name']} ({sailor['ip']}) is in the crew list, services "
                   f"{','.join(sailor['services']) or 'none'}")


def _sailor_set(request: Request, words: tuple[str, ...]) -> None:
    from common.units import format_duration

    sailor = request.send("POST", "/sailor_set", arguments.sailor_set_body(words))
    limit = format_duration(sailor["max_time_s"]) if sailor["max_time_s"] else "none"
    click.echo(f"sailor {sailor['name']} ({sailor['ip']}): services "
               f"{','.join(sailor['services']) or 'none'}, max_time {limit}")


def _sailor_remove(request: Request, name: str, force: bool) -> None:
    body = {"name": arguments.name("name", name), "force": force}
    request.send("POST", "/sailor_remove", body)
    click.echo(f"sailor {name} is off the crew list")


def _user_set(request: Request, words: tuple[str, ...]) -> None:
    user = request.send("POST", "/user_upsert", arguments.user_set_body(words))
    chores_limit = "none" if user["chores_limit"] is None else user["chores_limit"]
    click.echo(f"user {user['name']} ({user['uid']}): time_limit "
               f"{user['time_limit'] or 'none'}, chores_limit {chores_limit}")
