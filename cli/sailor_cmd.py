"""The `sailor` command: the first-run questions, or the sailor daemon with --serve."""

import os
import sys
from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--serve", "serve_port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Run the sailor daemon on PORT (after the first run).")
@click.option("--host", default="0.0.0.0", show_default=True,
              help="Address to serve on; calls to the captain leave from it too.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="The sailor's data folder (default: SAILOR_DATA or data/sailor).")
@click.option("--captain", metavar="ADDR:PORT", help="First run: where the captain listens.")
@click.option("--cpus", type=int, help="First run: how many cores to offer.")
@click.option("--gpus", metavar="TYPE:VRAM,...|none", help="First run: the GPUs to offer.")
@click.option("--ram", metavar="BYTES", help="First run: how much memory to offer.")
@click.option("--cluster-key", metavar="KEY", help="First run: the crew's shared key.")
@click.option("--cluster-key-file", type=click.Path(path_type=Path), metavar="PATH",
              help="First run: read the crew's shared key from a file only root may read.")
@click.option("--yes", "assume_yes", is_flag=True,
              help="First run: take the detected values for what is not given.")
@click.option("--awake-interval", type=float, default=2.0, show_default=True, metavar="S",
              help="With --serve: seconds between 'still here' calls.")
@click.option("--register-interval", type=float, default=3.0, show_default=True, metavar="S",
              help="With --serve: seconds between registration attempts.")
@click.option("--cancel-grace", type=float, default=5.0, show_default=True, metavar="S",
              help="With --serve: seconds between SIGTERM and SIGKILL when canceling.")
def main(serve_port: int | None, host: str, data_dir: Path | None, captain: str | None,
         cpus: int | None, gpus: str | None, ram: str | None, cluster_key: str | None,
         cluster_key_file: Path | None, assume_yes: bool, awake_interval: float,
         register_interval: float, cancel_grace: float) -> None:
    """Sailor: a machine of the crew that runs chores for the captain."""
    from captain.settings import default_data_dir

    folder = (data_dir or default_data_dir("sailor")).resolve()
    if serve_port is None:
        from sailor.first_run import run_first_run

        if cluster_key_file is not None:
            cluster_key = _key_from_file(cluster_key, cluster_key_file)
        run_first_run(folder, captain=captain, cpus=cpus, gpus=gpus, ram=ram,
                      cluster_key=cluster_key, assume_yes=assume_yes)
        return
    from common.serving import ServeRefused
    from sailor.daemon import SailorSettings
    from sailor.resources import check_cores, load_resources
    from sailor.server import serve

    try:
        resources = load_resources(folder)
        if resources is not None:
            check_cores(resources, os.sched_getaffinity(0), folder)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if resources is None:
        raise click.ClickException(f"no saved resources in {folder}: run 'sailor --data "
                                   f"{folder}' first to answer the setup questions")
    settings = SailorSettings(data_dir=folder, host=host, port=serve_port,
                              awake_interval_s=awake_interval,
                              register_interval_s=register_interval, cancel_grace_s=cancel_grace)
    try:
        code = serve(settings, resources)
    except ServeRefused as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


def _key_from_file(given: str | None, path: Path) -> str:
    from common.signing import read_key_file

    if given is not None:
        raise click.UsageError("give --cluster-key or --cluster-key-file, not both")
    try:
        return read_key_file(path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster-key-file") from None
