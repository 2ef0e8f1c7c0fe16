"""The `captain` command's entry point: the machine-readable client calls skip click.

A loop of scripted submissions pays the command's start-up every time, and most of it is
importing click. `captain --chore WORDS... --json` and `captain --consult [--all] --json`
(with an optional `--port N`) are answered here with the standard library and the small
client; any other command line, or anything unusual in one of these, goes to the full
command in cli/captain_cmd.py, which answers exactly as before.
"""

from __future__ import annotations

import os
import sys

# `typing` is imported for the type checker only: the command's start-up pays every import.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

_FLAGS = {"--chore", "--consult", "--all", "--json"}


def _fast_plan(argv: list[str]) -> tuple[str, list[str], int | None, bool] | None:
    """(command, words, port, everyone) for a command line this path answers, else None."""
    flags: list[str] = []
    words: list[str] = []
    port: int | None = None
    tokens = iter(argv)
    for token in tokens:
        if token == "--port":
            value = next(tokens, "")
            if port is not None or not (value.isdecimal() and 1 <= int(value) <= 65535):
                return None
            port = int(value)
        elif token in _FLAGS and token not in flags:
            flags.append(token)
        elif token.startswith("-"):
            return None
        else:
            words.append(token)
    commands = [f for f in flags if f in ("--chore", "--consult")]
    if "--json" not in flags or len(commands) != 1:
        return None
    command = commands[0]
    everyone = "--all" in flags
    if command == "--chore" and everyone or command == "--consult" and words:
        return None
    if port is None and not _port_from_env_ok():
        return None
    return command, words, port, everyone


def _port_from_env_ok() -> bool:
    text = os.environ.get("CAPTAIN_PORT")
    return not text or (text.isdecimal() and 1 <= int(text) <= 65535)


def _answer(port: int | None, method: str, path: str, body: Any = None) -> NoReturn:
    """Calls the endpoint and prints its JSON answer as the full command does."""
    from cli.client import CaptainUnreachable, call, captain_address, fail, print_answer

    try:
        answer = call(captain_address(port), method, path, body)
    except CaptainUnreachable as exc:
        fail(str(exc), as_json=True)
    print_answer(answer)


def main() -> None:
    plan = _fast_plan(sys.argv[1:])
    if plan is None:
        from cli.captain_cmd import main as full_command

        full_command()
        return
    command, words, port, everyone = plan
    if command == "--consult":
        _answer(port, "GET", "/user_consult?all=1" if everyone else "/user_consult")
    from cli import arguments

    try:
        body = arguments.chore_body(tuple(words))
    except arguments.BadArguments as exc:
        from cli.client import fail

        fail(str(exc), exc.field, as_json=True)
    _answer(port, "POST", "/user_chore", body)


if __name__ == "__main__":
    main()
