import json
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from sailor import detect
from sailor.first_run import parse_captain_address, run_first_run
from sailor.resources import (
    Gpu,
    SavedResources,
    format_gpus,
    load_resources,
    parse_gpus,
    resources_path,
    save_resources,
)

GIB = 1024**3
MACHINE_CORES = [0, 2, 4, 6]
MACHINE_RAM_BYTES = 16 * GIB
MACHINE_GPUS = [Gpu(type="A100", vram=80 * GIB), Gpu(type="A100", vram=80 * GIB)]


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--captain")
@click.option("--cpus", type=int)
@click.option("--gpus")
@click.option("--ram")
@click.option("--cluster-key")
@click.option("--yes", "assume_yes", is_flag=True)
def first_run_command(
    data_dir: Path,
    captain: str | None,
    cpus: int | None,
    gpus: str | None,
    ram: str | None,
    cluster_key: str | None,
    assume_yes: bool,
) -> None:
    run_first_run(
        data_dir,
        captain=captain,
        cpus=cpus,
        gpus=gpus,
        ram=ram,
        cluster_key=cluster_key,
        assume_yes=assume_yes,
    )


@pytest.fixture(autouse=True)
def machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with four allowed cores (not contiguous), 16 GiB and two A100s."""
    monkeypatch.setattr(detect, "detect_cores", lambda: list(MACHINE_CORES))
    monkeypatch.setattr(detect, "detect_ram_bytes", lambda: MACHINE_RAM_BYTES)
    monkeypatch.setattr(detect, "detect_gpus", lambda: list(MACHINE_GPUS))


def invoke(data_dir: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(first_run_command, ["--data-dir", str(data_dir), *args], input=input)


def saved_json(data_dir: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(resources_path(data_dir).read_text())
    return loaded


def test_all_options_with_yes_saves_the_answers(tmp_path: Path) -> None:
    data_dir = tmp_path / "sailor"
    result = invoke(
        data_dir,
        "--captain=10.0.0.1:8000",
        "--cpus=3",
        "--gpus=A100:80G",
        "--ram=8G",
        "--cluster-key=s3cret",
        "--yes",
    )

    assert result.exit_code == 0, result.output
    assert saved_json(data_dir) == {
        "captain": "10.0.0.1:8000",
        "cpus": 3,
        "cores": [0, 2, 4],
        "gpus": [{"type": "A100", "vram": 80 * GIB}],
        "ram": 8 * GIB,
        "cluster_key": "s3cret",
    }
    assert str(resources_path(data_dir)) in result.output
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(resources_path(data_dir).stat().st_mode) == 0o600
    assert [path.name for path in data_dir.iterdir()] == ["resources.json"]


def test_yes_takes_what_the_machine_has(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--captain=captain.lab:7000", "--yes")

    assert result.exit_code == 0, result.output
    res = load_resources(tmp_path)
    assert res == SavedResources(
        captain="captain.lab:7000",
        cpus=4,
        cores=MACHINE_CORES,
        gpus=MACHINE_GPUS,
        ram=MACHINE_RAM_BYTES,
        cluster_key="",
    )


def test_yes_without_captain_fails(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--yes")

    assert result.exit_code == 2
    assert "--captain ADDR:PORT is required with --yes" in result.output
    assert not resources_path(tmp_path).exists()


def test_a_bad_cpus_typed_at_the_prompt_is_asked_again(tmp_path: Path) -> None:
    # captain, cpus (bad, then good), gpus (default), ram (default), cluster key (none)
    answers = "10.0.0.1:8000\n9\n2\n\n\n\n"
    result = invoke(tmp_path, input=answers)

    assert result.exit_code == 0, result.output
    assert "Error: this machine has only 4 cores, cannot offer 9" in result.output
    assert result.output.count("Cores to offer") == 2
    res = load_resources(tmp_path)
    assert res is not None
    assert (res.cpus, res.cores) == (2, [0, 2])
    assert res.gpus == MACHINE_GPUS
    assert res.ram == MACHINE_RAM_BYTES
    assert res.cluster_key == ""


def test_prompts_offer_the_detected_defaults(tmp_path: Path) -> None:
    result = invoke(tmp_path, input="10.0.0.1:8000\n\n\n\n\n")

    assert result.exit_code == 0, result.output
    assert "[4]" in result.output
    assert "[A100:80G,A100:80G]" in result.output
    assert "[16G]" in result.output


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ("10.0.0.1\n10.0.0.1:8000\n\n\n\n\n", "expected ADDR:PORT"),
        ("10.0.0.1:0\n10.0.0.1:8000\n\n\n\n\n", "the port must be a number from 1 to 65535"),
        ("10.0.0.1:8000\n0\n1\n\n\n\n", "offer at least one core"),
        ("10.0.0.1:8000\n\nA100\nnone\n\n\n", "expected 'none' or TYPE:VRAM"),
        ("10.0.0.1:8000\n\n\n1T\n1G\n\n", "this machine has only 16.0 GiB"),
        ("10.0.0.1:8000\n\n\nlots\n1G\n\n", "expected a number of bytes"),
    ],
)
def test_each_bad_answer_is_asked_again_with_the_reason(
    tmp_path: Path, answers: str, reason: str
) -> None:
    result = invoke(tmp_path, input=answers)

    assert result.exit_code == 0, result.output
    assert f"Error: {reason}" in result.output
    assert load_resources(tmp_path) is not None


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ("--cpus=9", "this machine has only 4 cores"),
        ("--cpus=0", "offer at least one core"),
        ("--cpus=-2", "expected a whole number of cores"),
        ("--ram=17G", "this machine has only 16.0 GiB"),
        ("--ram=0", "at least one byte"),
        ("--gpus=A100", "expected 'none' or TYPE:VRAM"),
        ("--gpus=A100:lots", "bad VRAM for GPU 'A100'"),
        ("--captain=10.0.0.1:99999", "the port must be a number from 1 to 65535"),
        ("--captain=300.1.2.3:8000", "neither an IPv4 address nor a host name"),
        ("--captain=bad_host:8000", "neither an IPv4 address nor a host name"),
    ],
)
def test_a_bad_option_value_raises_and_saves_nothing(
    tmp_path: Path, option: str, reason: str
) -> None:
    name = option.split("=")[0]
    args = [option] if name == "--captain" else ["--captain=10.0.0.1:8000", option]
    result = invoke(tmp_path, *args, "--yes")

    assert result.exit_code == 2
    assert f"Invalid value for {name}" in result.output
    assert reason in result.output
    assert not tmp_path.joinpath("resources.json").exists()


def test_a_bad_option_fails_before_anything_is_asked(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--ram=1T", input="10.0.0.1:8000\n\n\n\n")

    assert result.exit_code == 2
    assert "Captain address" not in result.output
    assert not resources_path(tmp_path).exists()


def test_a_bad_option_value_raises_bad_parameter(tmp_path: Path) -> None:
    with pytest.raises(click.BadParameter) as caught:
        run_first_run(
            tmp_path,
            captain="10.0.0.1:8000",
            cpus=99,
            gpus=None,
            ram=None,
            cluster_key=None,
            assume_yes=True,
        )
    assert caught.value.param_hint == "--cpus"
    assert list(tmp_path.iterdir()) == []


def test_the_cluster_key_prompt_hides_what_is_typed(tmp_path: Path) -> None:
    result = invoke(tmp_path, input="10.0.0.1:8000\n\n\n\ntop-secret\n")

    assert result.exit_code == 0, result.output
    assert "top-secret" not in result.output
    res = load_resources(tmp_path)
    assert res is not None and res.cluster_key == "top-secret"


def test_saved_answers_are_the_new_defaults(tmp_path: Path) -> None:
    first = invoke(
        tmp_path,
        "--captain=10.0.0.1:8000",
        "--cpus=1",
        "--gpus=none",
        "--ram=2G",
        "--cluster-key=k1",
        "--yes",
    )
    assert first.exit_code == 0, first.output

    again = invoke(tmp_path, "--yes")

    assert again.exit_code == 0, again.output
    assert saved_json(tmp_path) == {
        "captain": "10.0.0.1:8000",
        "cpus": 1,
        "cores": [0],
        "gpus": [],
        "ram": 2 * GIB,
        "cluster_key": "k1",
    }


def test_a_saved_default_that_no_longer_fits_is_refused_with_yes(tmp_path: Path) -> None:
    save_resources(
        tmp_path,
        SavedResources(captain="10.0.0.1:8000", cpus=8, cores=list(range(8)), gpus=[], ram=GIB),
    )

    result = invoke(tmp_path, "--yes")

    assert result.exit_code == 2
    assert "the default '8' for --cpus is not valid" in result.output


def test_a_damaged_resources_file_is_named(tmp_path: Path) -> None:
    resources_path(tmp_path).write_text("{not json")

    result = invoke(tmp_path, "--captain=10.0.0.1:8000", "--yes")

    assert result.exit_code == 1
    assert str(resources_path(tmp_path)) in result.output
    assert "damaged" in result.output


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    res = SavedResources(
        captain="h:1", cpus=2, cores=[0, 1], gpus=MACHINE_GPUS, ram=GIB, cluster_key="k"
    )
    save_resources(tmp_path / "deep" / "sailor", res)

    assert load_resources(tmp_path / "deep" / "sailor") == res
    assert load_resources(tmp_path / "absent") is None


@pytest.mark.parametrize(
    "content",
    [
        "",
        "[]",
        '{"captain": "h:1"}',
        '{"captain": "h:1", "cpus": 0, "cores": [], "gpus": [], "ram": 1}',
        '{"captain": "h:1", "cpus": 1, "cores": [0], "gpus": [{"type": "A"}], "ram": 1}',
    ],
)
def test_load_names_a_damaged_file(tmp_path: Path, content: str) -> None:
    resources_path(tmp_path).write_text(content)

    with pytest.raises(ValueError, match="resources.json is damaged"):
        load_resources(tmp_path)


@pytest.mark.parametrize(
    ("text", "gpus"),
    [
        ("", []),
        ("none", []),
        ("None", []),
        ("A100:80G", [Gpu(type="A100", vram=80 * GIB)]),
        ("A100:80G,A100:80GiB", [Gpu(type="A100", vram=80 * GIB)] * 2),
        (" RTX-3090:24G , V100:32G ", [Gpu("RTX-3090", 24 * GIB), Gpu("V100", 32 * GIB)]),
        ("L4:24000000000", [Gpu(type="L4", vram=24_000_000_000)]),
    ],
)
def test_parse_gpus_accepts(text: str, gpus: list[Gpu]) -> None:
    assert parse_gpus(text) == gpus


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A100", "expected 'none' or TYPE:VRAM"),
        (":80G", "expected 'none' or TYPE:VRAM"),
        ("A 100:80G", "expected 'none' or TYPE:VRAM"),
        ("A100:80G,", "expected 'none' or TYPE:VRAM"),
        ("A100:", "bad VRAM for GPU 'A100'"),
        ("A100:0", "bad VRAM for GPU 'A100'"),
        ("A100:80G:1", "bad VRAM for GPU 'A100'"),
        ("nothing", "expected 'none' or TYPE:VRAM"),
    ],
)
def test_parse_gpus_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_gpus(text)


def test_format_gpus_reads_back() -> None:
    gpus = [Gpu(type="A100", vram=80 * GIB), Gpu(type="H100", vram=81559 * 1024**2)]
    assert format_gpus(gpus) == "A100:80G,H100:81559M"
    assert parse_gpus(format_gpus(gpus)) == gpus
    assert format_gpus([]) == "none"


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.1:8000", "10.0.0.1:8000"),
        ("captain:1", "captain:1"),
        ("head-1.lab.example.org:65535", "head-1.lab.example.org:65535"),
        ("localhost:08000", "localhost:8000"),
    ],
)
def test_parse_captain_address_accepts(text: str, address: str) -> None:
    assert parse_captain_address(text) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "10.0.0.1",
        ":8000",
        "10.0.0.1:",
        "10.0.0.1:0",
        "10.0.0.1:65536",
        "10.0.0.1:80a",
        "10.0.0:8000",
        "256.0.0.1:8000",
        "-host:8000",
        "host-:8000",
        "ho st:8000",
        "host.:8000",
        "[::1]:8000",
        "::1:8000",
        "höst:8000",
    ],
)
def test_parse_captain_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_captain_address(text)
