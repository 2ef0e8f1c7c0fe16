"""The `captain --serve` options for the dashboard over HTTPS.

They are kept out of the command's own parameters: each option leaves its value in the
click context, and `https_settings()` turns them into the captain's settings.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
_META_KEY = "captain.https"


def _remember(context: click.Context, parameter: click.Parameter, value: Any) -> Any:
    context.meta.setdefault(_META_KEY, {})[parameter.name] = value
    return value


_OPTIONS = [
    click.option("--tls-cert", type=click.Path(path_type=Path), metavar="FILE",
                 expose_value=False, callback=_remember,
                 help="With --serve: serve the dashboard over HTTPS with this certificate."),
    click.option("--tls-key", type=click.Path(path_type=Path), metavar="FILE",
                 expose_value=False, callback=_remember,
                 help="With --serve: the private key of --tls-cert."),
    click.option("--web-port", type=click.IntRange(1, 65535), metavar="PORT",
                 expose_value=False, callback=_remember,
                 help="With --tls-cert: the HTTPS port (default: the --serve port plus 1)."),
    click.option("--tls-self-signed", is_flag=True, expose_value=False, callback=_remember,
                 help="With --tls-cert and --tls-key: when neither file exists, make a "
                      "self-signed pair there first."),
]


def https_options(command: F) -> F:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def https_settings(serve_port: int, host: str) -> dict[str, Any]:
    """The CaptainSettings fields these options set; makes the self-signed pair if asked."""
    chosen = click.get_current_context().meta.get(_META_KEY, {})
    cert, key = chosen.get("tls_cert"), chosen.get("tls_key")
    if (cert is None) != (key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if cert is None:
        if chosen.get("web_port") or chosen.get("tls_self_signed"):
            raise click.UsageError("--web-port and --tls-self-signed need --tls-cert and "
                                   "--tls-key")
        return {}
    if chosen.get("tls_self_signed") and not cert.exists() and not key.exists():
        from web.tls import make_self_signed_pair

        names = [host] if host not in ("0.0.0.0", "::", "") else []
        try:
            make_self_signed_pair(cert, key, names)
        except (OSError, RuntimeError) as exc:
            raise click.ClickException(f"cannot make a self-signed pair: {exc}") from None
        click.echo(f"captain: made a self-signed certificate {cert} and key {key}", err=True)
    web_port = chosen.get("web_port") or serve_port + 1
    return {"tls_cert": cert.resolve(), "tls_key": key.resolve(), "web_port": web_port}
