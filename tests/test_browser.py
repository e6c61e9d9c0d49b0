"""The HTML report in a real browser: Debian's ``chromium`` driven by Playwright.

Two reports are opened: a stand-in for the demo report (the digits CNN of
``digits_models``, trained for a few seconds, with eight held-out digits as its
images) and one deep architecture (MobileNetV3Small, untrained). For each:

* no console errors and no uncaught page errors;
* no network requests: the page loads nothing but itself (``data:`` URIs aside);
* every ``<img>`` decodes (``naturalWidth > 0``);
* every in-page link (``href="#..."``) names an element that exists, and clicking
  it brings that element on screen;
* nothing scrolls sideways at a 390 px wide viewport (a phone), also with every
  ``<details>`` opened; a failure names the elements that stick out.

Locally the tests skip when /usr/bin/chromium or Playwright is missing; ``.ci/run``
installs both and sets ``REPORTGEN_REQUIRE_BROWSER=1``, which turns that skip
into a failure.
"""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Playwright cannot download its own browser here; it drives Debian's. We run as root: --no-sandbox.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE_WIDTH = 390  # CSS px, an iPhone 12-15 in portrait
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": PHONE_WIDTH, "height": 844}
REPORTS = ("demo", "mobilenet_v3_small")


def _unavailable(reason: str):
    if os.environ.get("REPORTGEN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (REPORTGEN_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is missing (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _demo_report(out: Path) -> Path:
    """The demo report's stand-in: the trained digits CNN and eight held-out digits, all sections."""
    import digits_models
    from reportgen.context import LoadedModel, Options
    from reportgen.report import build_report

    x, y = digits_models.digits()
    samples = [((x[i] * 255).round().astype(np.uint8), str(int(y[i]))) for i in range(1500, 1508)]
    loaded = LoadedModel(
        digits_models.trained(),
        "demo-digits",
        "(test) digits_models.trained()",
        None,
        sample_images=samples,
        class_names=[str(c) for c in range(10)],
    )
    folder, data = build_report(loaded, Options(quiet=True), out, ("html",))
    assert not data.get("section_errors"), data.get("section_errors")
    return folder / "report.html"


def _deep_report(shared) -> Path:
    """conftest's mobilenet_v3_small_report (every section, --pattern-steps 1 --pattern-filters 4
    --feature-channels 8), built once a session and also read by test_zoo."""
    import json

    res, folder = shared
    assert res.status == 0, res.stderr
    data = json.loads((folder / "report.json").read_text())
    assert not data.get("section_errors"), data.get("section_errors")
    return folder / "report.html"


@pytest.fixture(scope="module", params=REPORTS)
def report_html(request, browser, tmp_path_factory) -> Path:
    if request.param == "demo":
        return _demo_report(tmp_path_factory.mktemp(f"browser-{request.param}"))
    return _deep_report(request.getfixturevalue("mobilenet_v3_small_report"))


# --- what the page is asked, in its own language --------------------------------------------------

_IMAGES_JS = """() => [...document.images].map((img, i) => ({
    i, alt: img.alt, src: (img.getAttribute('src') || '').slice(0, 40), complete: img.complete,
    naturalWidth: img.naturalWidth, section: (img.closest('section[id]') || {}).id || null,
}))"""

# Click every distinct in-page link; report those whose target is missing or not on screen afterwards.
_LINKS_JS = """() => {
    const seen = new Map();
    for (const a of document.querySelectorAll('a[href^="#"]')) {
        const href = a.getAttribute('href');
        if (!seen.has(href)) seen.set(href, {a, count: 0});
        seen.get(href).count += 1;
    }
    const broken = [];
    for (const [href, {a, count}] of seen) {
        const host = a.closest('section[id], nav');
        const where = {href, count, text: a.textContent.trim().slice(0, 60),
                       from: host ? host.id || host.tagName.toLowerCase() : null};
        let id;
        try { id = decodeURIComponent(href.slice(1)); }
        catch (e) { broken.push({...where, problem: 'fragment is not valid percent-encoding'}); continue; }
        const target = id === '' || id.toLowerCase() === 'top' && !document.getElementById(id)
            ? document.documentElement : document.getElementById(id);
        if (!target) { broken.push({...where, problem: `no element has id="${id}"`}); continue; }
        window.scrollTo(0, 0);
        a.click();
        if (!target.checkVisibility()) {
            broken.push({...where,
                         problem: 'the target is not rendered (display:none, or in a closed <details>)'});
            continue;
        }
        const top = target.getBoundingClientRect().top;
        const atBottom = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2;
        if (top < -2 || top >= window.innerHeight || (top > window.innerHeight / 2 && !atBottom)) {
            broken.push({...where, problem: `after the click the target's top is at ${Math.round(top)} px `
                                            + `in a ${window.innerHeight} px high window`});
        }
    }
    window.scrollTo(0, 0);
    return {count: seen.size, broken};
}"""

# The elements whose box reaches past the viewport's right edge. The walk stops at the first
# such element of each branch (its children stick out with it) and does not enter scroll
# containers that fit (what they hold scrolls inside them, not the page).
_OVERFLOW_JS = """() => {
    const root = document.documentElement;
    const width = root.clientWidth;
    const found = [];
    const describe = (el, r) => ({
        tag: el.tagName.toLowerCase(), id: el.id || null,
        class: el.getAttribute('class') || '', section: (el.closest('section[id]') || {}).id || null,
        parent: el.parentElement.tagName.toLowerCase(),
        parentClass: el.parentElement.getAttribute('class') || '',
        inClosedDetails: !!el.closest('details[data-was-closed]'),
        left: Math.round(r.left + window.scrollX), right: Math.round(r.right + window.scrollX),
        width: Math.round(r.width), over: Math.round(r.right + window.scrollX - width),
        text: el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 50),
    });
    const walk = (el) => {
        for (const child of el.children) {
            if (!child.checkVisibility()) continue;  // display:none, or inside a closed <details>
            const r = child.getBoundingClientRect();
            if (r.width > 0 && r.right + window.scrollX > width + 1) {
                found.push(describe(child, r));
                continue;
            }
            if (getComputedStyle(child).overflowX === 'visible') walk(child);
        }
    };
    walk(root);
    return {width, scrollWidth: root.scrollWidth, found};
}"""

_MARK_CLOSED_DETAILS_JS = """() => {
    for (const d of document.querySelectorAll('details:not([open])')) d.dataset.wasClosed = '1';
}"""
_OPEN_DETAILS_JS = "() => { for (const d of document.querySelectorAll('details')) d.open = true; }"


@dataclass
class Visit:
    url: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    links: dict = field(default_factory=dict)  # viewport name -> {"count": n, "broken": [...]}
    viewport_meta: str | None = None
    overflow: dict = field(
        default_factory=dict
    )  # "as loaded" / "details open" -> {"width", "scrollWidth", "found"}


@pytest.fixture(scope="module")
def visit(browser, report_html) -> Visit:
    """Open the report once, at desktop and phone widths, and record everything the tests check."""
    url = report_html.resolve().as_uri()
    seen = Visit(url)
    context = browser.new_context(viewport=DESKTOP, service_workers="block")

    def note(request) -> bool:
        """Record a request for anything but the report itself and data: URIs; True when recorded."""
        if request.url.startswith("data:") or request.url.split("#")[0] == url:
            return False
        line = f"{request.method} {request.url[:120]} ({request.resource_type})"
        if line not in seen.requests:
            seen.requests.append(line)
        return True

    def on_console(message):
        if message.type == "error":
            seen.console_errors.append(f"console.error: {message.text}")

    # Every request passes through the route: the report loads, anything else is recorded and refused.
    context.route("**/*", lambda r: r.abort() if note(r.request) else r.continue_())
    page = context.new_page()
    page.on("request", note)  # also what bypasses routing
    page.on("console", on_console)
    page.on("pageerror", lambda e: seen.console_errors.append(f"uncaught: {e}"))
    try:
        page.goto(url, wait_until="load")
        page.evaluate("document.fonts.ready.then(() => true)")
        seen.viewport_meta = page.evaluate(
            "(document.querySelector('meta[name=viewport]') || {content: null}).content"
        )
        seen.images = page.evaluate(_IMAGES_JS)
        page.evaluate(_MARK_CLOSED_DETAILS_JS)
        page.set_viewport_size(PHONE)
        seen.overflow["as loaded"] = page.evaluate(_OVERFLOW_JS)
        # (a link into a closed <details> opens it: the links come after the page as loaded)
        seen.links[f"phone {PHONE_WIDTH} px"] = page.evaluate(_LINKS_JS)
        page.set_viewport_size(DESKTOP)
        seen.links[f"desktop {DESKTOP['width']} px"] = page.evaluate(_LINKS_JS)
        page.set_viewport_size(PHONE)
        page.evaluate(_OPEN_DETAILS_JS)
        seen.overflow["every <details> open"] = page.evaluate(_OVERFLOW_JS)
        page.wait_for_timeout(50)  # a late console error or request from the interaction still lands
    finally:
        context.close()
    return seen


# --- the checks -----------------------------------------------------------------------------------


def test_no_console_errors(visit):
    assert visit.console_errors == [], "\n".join(visit.console_errors)


def test_no_network_requests(visit):
    assert visit.requests == [], "the report is not self-contained; it asked for:\n" + "\n".join(
        visit.requests
    )


def test_every_image_loads(visit):
    broken = [im for im in visit.images if not im["complete"] or im["naturalWidth"] == 0]
    assert broken == [], "images that do not decode:\n" + "\n".join(
        f"#{im['i']} in section {im['section']}: alt={im['alt']!r} src={im['src']!r}..." for im in broken
    )
    assert len(visit.images) >= 5, f"expected the report's figures, found {len(visit.images)} <img>"
    assert all(im["src"].startswith("data:image/") for im in visit.images)


def test_every_in_page_link_lands(visit):
    lines = []
    for viewport, result in visit.links.items():
        assert result["count"] >= 5, f"expected the table of contents' links, found {result['count']}"
        lines += [
            f"[{viewport}] {b['href']} (x{b['count']}, {b['text']!r}, in {b['from']}): {b['problem']}"
            for b in result["broken"]
        ]
    assert lines == [], "in-page links that do not land:\n" + "\n".join(lines)


def _selector(tag: str, id_: str | None, classes: str) -> str:
    return tag + (f"#{id_}" if id_ else "") + "".join(f".{c}" for c in classes.split())


def test_nothing_scrolls_sideways_on_a_phone(visit):
    assert visit.viewport_meta and "width=device-width" in visit.viewport_meta, (
        "without <meta name=viewport content='width=device-width'> a phone lays the page out 980 px wide"
    )
    lines = []
    for state, o in visit.overflow.items():
        assert o["width"] == PHONE_WIDTH, o  # no layout scrollbar eats into the width
        if o["scrollWidth"] <= o["width"] + 1 and not o["found"]:
            continue
        lines.append(
            f"{state}: the page is {o['scrollWidth']} px wide in a {o['width']} px viewport; sticking out:"
        )
        for e in o["found"]:
            name = _selector(e["tag"], e["id"], e["class"])
            closed = " (inside a <details> closed at load)" if e["inClosedDetails"] else ""
            lines.append(
                f"  {name} (in {_selector(e['parent'], None, e['parentClass'])}, section {e['section']}): "
                f"right edge {e['right']} px (+{e['over']} px), width {e['width']} px{closed} {e['text']!r}"
            )
    assert lines == [], "\n".join(lines)
