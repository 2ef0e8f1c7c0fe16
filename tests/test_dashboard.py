"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real crew.

One crew serves the tests that only look: an idle sailor, one in use, one full and one down,
with chores of the test user on them. Tests that change things get a crew of their own.
Screenshots of every view are saved under test-output/screenshots/ for a person to look at.
"""

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")
from conftest import TEST_USER  # noqa: E402
from playwright.sync_api import (  # noqa: E402
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from crew import (  # noqa: E402
    TEST_PASSWORD,
    Crew,
    ensure_user,
    kill_user_processes,
    wait_until,
    world_readable_folder,
    write_script,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "screenshots"
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# The colours of the squares, as the page's style sheet gives them.
COLOURS = {"idle": "rgb(46, 157, 88)", "busy": "rgb(229, 183, 0)",
           "full": "rgb(208, 67, 58)", "down": "rgb(138, 143, 152)"}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (tests/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Watched:
    """A page and every console error, page error and request it made."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def open(self, view: str = "") -> Page:
        self.page.goto(f"{self.base}/#/{view}" if view else f"{self.base}/")
        expect(self.page.locator("#live")).to_contain_text("live", timeout=10_000)
        return self.page

    def shoot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def watched_page(browser: Browser, crew: Crew, viewport: ViewportSize = LAPTOP
                 ) -> Iterator[Watched]:
    context = browser.new_context(viewport=viewport)
    try:
        yield Watched(context.new_page(), f"http://127.0.0.1:{crew.port}")
    finally:
        context.close()


class FourSailors:
    def __init__(self, crew: Crew, boat: Path, chores: dict[str, str]) -> None:
        self.crew = crew
        self.boat = boat
        self.chores = chores


def user_boat(root: Path, user: str) -> Path:
    folder = root / "boat" / user
    folder.mkdir(parents=True)
    shutil.chown(folder, user)
    shutil.chown(folder.parent, user)
    return folder


@pytest.fixture(scope="module")
def four() -> Iterator[FourSailors]:
    """s1 idle, s2 in use, s3 full, s4 down; s2 and s3 run a chore of the test user."""
    ensure_user(TEST_USER)
    root = world_readable_folder("captain-dashboard-")
    crew = Crew(root)
    crew.start_captain()
    try:
        boat = user_boat(root, TEST_USER)
        crew.add_sailor("s1", "127.0.0.2", cpus=2, services="cpu")
        crew.add_sailor("s2", "127.0.0.3", cpus=2, services="cpu,gpu")
        crew.add_sailor("s3", "127.0.0.4", cpus=1, services="gpu")
        crew.add_sailor("s4", "127.0.0.5", cpus=2, services="cpu")
        crew.sailors["s4"].kill()
        wait_until(lambda: crew.sailor_field("s4", "status") == "down", what="s4 down")
        long = write_script(boat, "train-model.sh", "sleep 300\n", owner=TEST_USER)
        chores = {
            "s2": crew.submit(long, "sailor=s2", "cpus=1", user=TEST_USER),
            "s3": crew.submit(long, "sailor=s3", "cpus=1", user=TEST_USER),
        }
        for chore_id in chores.values():
            crew.wait_chore(chore_id, "running")
        yield FourSailors(crew, boat, chores)
    finally:
        crew.stop()
        kill_user_processes(TEST_USER)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def page(browser: Browser, four: FourSailors) -> Iterator[Watched]:
    yield from watched_page(browser, four.crew)


def log_in(watched: Watched, user: str = TEST_USER, password: str = TEST_PASSWORD) -> Page:
    page = watched.page
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-button")
    return page


def square(page: Page, name: str) -> Any:
    return page.locator(f"#cluster .square[data-sailor='{name}']").first


# --- looking at the crew --------------------------------------------------------------------


def test_home_loads_with_no_console_error_and_nothing_from_elsewhere(page: Watched):
    home = page.open()

    expect(home).to_have_title("Captain")
    expect(home.locator(".big-name", has_text="cluster")).to_be_visible()
    expect(home.locator(".big-name", has_text="chores")).to_be_visible()
    page.shoot("home")
    assert page.errors == []
    assert page.requests and all(url.startswith(page.base) for url in page.requests)


def test_squares_have_the_colour_of_their_sailors_state(page: Watched):
    cluster = page.open()
    cluster.get_by_text(re.compile(r"^\s*cluster\s*$")).first.click()

    for name, status in (("s1", "idle"), ("s2", "busy"), ("s3", "full"), ("s4", "down")):
        expect(square(cluster, name)).to_have_attribute("data-status", status)
        colour = square(cluster, name).evaluate("node => getComputedStyle(node).backgroundColor")
        assert colour == COLOURS[status], f"{name} is {status}"
    page.shoot("cluster")
    assert page.errors == []


def test_hovering_or_focusing_a_square_opens_its_panel_above_it(page: Watched, four):
    cluster = page.open("cluster")
    s2 = square(cluster, "s2")
    panel = s2.locator(".panel")
    expect(panel).to_be_hidden()

    s2.hover()
    expect(panel).to_be_visible()
    for words in ("127.0.0.3", "cpu, gpu", "1 of 2 in use", "GPUs", "RAM", "max time",
                  "last seen", "chores"):
        expect(panel).to_contain_text(words)
    # Without a login the page tells nobody whose chores run or what they are.
    assert TEST_USER not in cluster.inner_text("body")
    assert "train-model" not in cluster.content()
    page.shoot("cluster-panel")

    cluster.mouse.move(0, 0)
    square(cluster, "s1").focus()
    expect(square(cluster, "s1").locator(".panel")).to_be_visible()
    expect(panel).to_be_hidden()
    cluster.set_viewport_size({"width": 1280, "height": 1200})
    cluster.evaluate("window.scrollTo(0, 0)")
    spacer = "document.querySelector('#cluster').style.marginTop = '420px'"
    cluster.evaluate(spacer)
    cluster.mouse.move(0, 0)
    s2.hover()
    square_box, panel_box = s2.bounding_box(), panel.bounding_box()
    assert square_box and panel_box
    assert panel_box["y"] + panel_box["height"] <= square_box["y"] + 1, "the panel is above"


def test_the_by_service_switch_groups_sailors_by_service(page: Watched):
    cluster = page.open("cluster")
    cluster.get_by_role("button", name="by service").click()

    panels = cluster.locator("#cluster .service-panel")
    expect(panels).to_have_count(2)
    groups = {}
    for index in range(2):
        section = panels.nth(index)
        title = section.locator("h2").inner_text().split()[0]
        groups[title] = sorted(section.locator(".square").evaluate_all(
            "nodes => nodes.map(n => n.dataset.sailor)"))
    assert groups == {"cpu": ["s1", "s2", "s4"], "gpu": ["s2", "s3"]}
    page.shoot("cluster-by-service")

    cluster.get_by_role("button", name="by sailor").click()
    expect(cluster.locator("#cluster .service-panel")).to_have_count(0)
    expect(cluster.locator("#cluster .square")).to_have_count(4)


# --- logging in and the chores --------------------------------------------------------------


def test_a_wrong_password_shows_an_error_and_the_right_one_lists_the_chores(page: Watched,
                                                                          four: FourSailors):
    chores = page.open("chores")
    expect(chores.locator("#login")).to_be_visible()
    page.shoot("chores-login")

    log_in(page, password="not-the-password")
    expect(chores.locator("#login-error")).to_have_text("wrong user name or password",
                                                         timeout=15_000)
    page.shoot("chores-login-failed")

    log_in(page)
    table = chores.locator("table.chores")
    expect(table).to_be_visible(timeout=15_000)
    for sailor, chore_id in four.chores.items():
        row = table.locator(f"tr[data-chore='{chore_id}']")
        expect(row).to_contain_text("train-model.sh")
        expect(row).to_contain_text(sailor)
        expect(row).to_contain_text("running")
        expect(row.get_by_role("button", name="cancel")).to_be_visible()
    expect(chores.locator("#who")).to_contain_text(TEST_USER)
    page.shoot("chores")

    chores.locator(".tabs a", has_text="cluster").click()
    square(chores, "s2").hover()
    expect(square(chores, "s2").locator(".panel")).to_contain_text(f"#{four.chores['s2']}")
    expect(square(chores, "s2").locator(".badge")).to_have_text("1")
    page.shoot("cluster-logged-in")


def test_the_page_reads_well_at_a_phone_width(browser: Browser, four: FourSailors):
    for watched in watched_page(browser, four.crew, PHONE):
        for view in ("", "cluster", "chores"):
            page = watched.open(view)
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= PHONE["width"], f"the {view or 'home'} view scrolls sideways"
            watched.shoot(f"phone-{view or 'home'}")
        log_in(watched)
        expect(watched.page.locator("table.chores")).to_be_visible(timeout=15_000)
        assert watched.page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        watched.shoot("phone-chores-logged-in")
        assert watched.errors == []


# --- changes, live ---------------------------------------------------------------------------


@pytest.fixture
def own_page(browser: Browser, crew: Crew) -> Iterator[Watched]:
    yield from watched_page(browser, crew)


def test_empty_crew_and_no_chores_say_so(own_page: Watched, test_user: str):
    cluster = own_page.open("cluster")
    expect(cluster.locator("#cluster")).to_contain_text("No sailors yet")
    own_page.shoot("cluster-empty")

    cluster.locator(".tabs a", has_text="chores").click()
    log_in(own_page)
    expect(cluster.locator("#chores")).to_contain_text("No chores yet", timeout=15_000)
    own_page.shoot("chores-empty")


def test_a_chore_from_the_cli_appears_and_cancel_from_the_page_ends_it(
        own_page: Watched, crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2", cpus=1)
    page = own_page.open("chores")
    log_in(own_page)
    expect(page.locator("#chores")).to_contain_text("No chores yet", timeout=15_000)
    page.evaluate("window.sameDocument = true")

    script = write_script(boat, "work.sh", "sleep 300\n", owner=test_user)
    chore_id = crew.submit(script, "service=cpu", user=test_user)
    asked_at = time.monotonic()
    row = page.locator(f"tr[data-chore='{chore_id}']")
    expect(row).to_be_visible(timeout=3_000)
    assert time.monotonic() - asked_at < 2.0, "the page followed the event stream"
    expect(row).to_contain_text("running", timeout=10_000)
    assert page.evaluate("window.sameDocument") is True, "the page was not reloaded"

    row.get_by_role("button", name="cancel").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Cancel chore {chore_id}?")
    own_page.shoot("chores-cancel-confirm")
    dialog.get_by_role("button", name="keep it").click()
    expect(dialog).to_be_hidden()
    assert crew.chore(chore_id)["status"] == "running"

    row.get_by_role("button", name="cancel").click()
    page.locator("#confirm").get_by_role("button", name="cancel the chore").click()
    crew.wait_chore(chore_id, "canceled")
    expect(row.locator(".pill")).to_have_text("canceled", timeout=5_000)
    expect(row.get_by_role("button", name="cancel")).to_have_count(0)
    own_page.shoot("chores-canceled")
    assert crew.chore(chore_id)["reason"] == "canceled by user"


def test_when_the_stream_drops_the_page_says_so_and_reconnects(own_page: Watched, crew: Crew):
    crew.add_sailor("s1", "127.0.0.2")
    page = own_page.open("cluster")
    expect(square(page, "s1")).to_have_attribute("data-status", "idle")

    crew.captain.kill()
    expect(page.locator("#banner")).to_contain_text("dropped", timeout=10_000)
    expect(page.locator("#live")).to_contain_text("reconnecting")
    own_page.shoot("stream-dropped")

    crew.restart_captain()
    expect(page.locator("#live")).to_contain_text("live", timeout=20_000)
    expect(page.locator("#banner")).to_be_hidden()
    crew.add_sailor("s2", "127.0.0.3")
    expect(square(page, "s2")).to_be_visible(timeout=3_000)
