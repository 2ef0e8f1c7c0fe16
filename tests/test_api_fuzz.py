"""The captain's API against its own OpenAPI document, fuzzed by schemathesis.

A real captain with one sailor is called as root over loopback with bodies made from the
published schema, valid and not: no answer may be a 5xx, every answer must have a status and
a body the document describes, and a body the schema refuses must get a 4xx. The sailor
endpoints are called twice: as a stranger (unsigned, from outside the crew: 403), and as a
crew member (from the address of a preregistered sailor, signed with the cluster key), so
that their bodies reach the code behind them. The examples are drawn the same way on every
run (derandomized), so that a run is repeatable.
"""

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from captain.openapi import CAPTAIN_OPERATIONS, SAILOR_OPERATIONS
from common.signing import ClusterKey
from crew import Crew, world_readable_folder

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def fuzzed_crew() -> Iterator[Crew]:
    folder = world_readable_folder("captain-fuzz-")
    running = Crew(folder)
    running.start_captain()
    running.add_sailor("s1", "127.0.0.2")
    yield running
    running.stop()
    shutil.rmtree(folder, ignore_errors=True)


CREW_MEMBER_IP = "127.0.0.3"


class SignedFromCrew(requests.adapters.HTTPAdapter):
    """Sends from a crew member's address."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (CREW_MEMBER_IP, 0)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def crew_session(fuzzed_crew: Crew) -> Iterator[requests.Session]:
    """A session that calls as the sailor 'member', every request signed with the key."""
    fuzzed_crew.cli_ok("--prereg", "member", CREW_MEMBER_IP, "services=cpu")
    key = ClusterKey((fuzzed_crew.captain_data / "cluster.key").read_text().strip())

    def sign(request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        payload = body.encode() if isinstance(body, str) else body
        request.headers.update(key.headers(request.method or "", request.path_url, payload))
        return request

    session = requests.Session()
    session.mount("http://", SignedFromCrew())
    session.auth = sign
    yield session
    session.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed_crew: Crew) -> schemathesis.BaseSchema:
    base = f"http://127.0.0.1:{fuzzed_crew.port}"
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


EXAMPLES_PER_OPERATION = 40
# Every operation with valid inputs; those that take a body or a query with invalid ones too.
# Sailor endpoints once more as a crew member.
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
RUNS = [(op.method, op.path, mode, False) for op in CAPTAIN_OPERATIONS for mode in MODES
        if op.fuzzed and (mode == GenerationMode.POSITIVE or op.body is not None or op.query)
        ] + [
    (op.method, op.path, mode, True) for op in CAPTAIN_OPERATIONS for mode in MODES
    if op.caller == "sailor"]


@pytest.mark.parametrize(
    "method, path, mode, signed", RUNS,
    ids=[f"{m} {p} {mode.value}{' signed' if s else ''}" for m, p, mode, s in RUNS])
def test_every_endpoint_keeps_to_its_schema(api_schema: schemathesis.BaseSchema,
                                            crew_session: requests.Session, method: str,
                                            path: str, mode: GenerationMode,
                                            signed: bool) -> None:
    operation = api_schema[path][method]
    session = crew_session if signed else None

    @hypothesis.given(case=operation.as_strategy(mode))
    @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                         derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, session=session)

    call()


def test_the_document_covers_every_route(fuzzed_crew: Crew) -> None:
    """Each endpoint the captain serves is in its document, and nothing else (the page and
    its static files apart)."""
    from captain import http_api
    from captain.core import Captain
    from captain.settings import CaptainSettings

    app = http_api.make_app(Captain(CaptainSettings(data_dir=Path("/nonexistent"))))
    page = {"/", "/front"}
    served = {(route.method.lower(), route.resource.canonical)
              for route in app.router.routes()
              if route.method != "HEAD" and route.resource is not None
              and route.resource.canonical not in page}
    described = {(op.method, op.path) for op in CAPTAIN_OPERATIONS}
    assert served == described

    with urllib.request.urlopen(f"http://127.0.0.1:{fuzzed_crew.port}/openapi.json") as answer:
        document = json.load(answer)
    assert document["openapi"].startswith("3.")
    assert {(m, p) for p, item in document["paths"].items() for m in item} == described


def test_the_sailor_publishes_its_document_too(fuzzed_crew: Crew) -> None:
    port = fuzzed_crew.sailor_ports["s1"]
    with urllib.request.urlopen(f"http://127.0.0.2:{port}/openapi.json") as answer:
        document = json.load(answer)
    assert set(document["paths"]) == {op.path for op in SAILOR_OPERATIONS}
    assert "ChoreOrder" in document["components"]["schemas"]
