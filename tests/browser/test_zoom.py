"""200 % zoom (WCAG 2.2 1.4.4 Resize text, 1.4.10 Reflow; SPEC §14): a 1280 px wide window
zoomed to 200 % lays a page out in 640 CSS px, at two device pixels each. Every main page of
every role, in both languages, at that size: nothing scrolls sideways, every control a person
uses is on screen (not past the right edge, not on top of another one), and no text is cut off
by its box. Screenshots (1280 device px wide) land in tests/artifacts/screenshots/zoom200-*.png.

Data tables may scroll inside their own box (1.4.10 exempts two-dimensional content): what is
inside a sideways-scrolling box is judged against that box, and the box against the page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.browser.test_pages_in_both_languages import (  # noqa: F401 - the module's fixture
    PASSWORD,
    people,
    set_language,
    settle,
)
from tests.chromium import watch_for_script_errors

pytestmark = pytest.mark.browser

# A 1280 × 800 window at 200 %: 640 × 400 CSS px, each two device pixels.
ZOOMED = {"width": 640, "height": 400}

PAGES = {
    "employee": [
        "/recordings",
        "/record",
        "/shares",
        "/shares/{share}/receipt",
        "/feedback",
        "/progress",
        "/my-data",
        "/embed/example",
        "/account",
    ],
    "coach": ["/coach", "/coach/shares/{share}", "/account"],
    "admin": [
        "/admin/users",
        "/admin/policy",
        "/admin/keys",
        "/admin/feedback-forms",
        "/oversight/records",
        "/account",
    ],
    "representative": ["/oversight", "/oversight/records", "/account"],
}

# What the layout may not do at this size, found in the page itself. Controls: what a person
# clicks, types in or reads as a name (links, buttons, fields, summaries).
LAYOUT_PROBLEMS = r"""() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  const describe = (el) => {
    const name = (el.getAttribute("aria-label") || el.textContent || el.value || "").trim();
    const classes = typeof el.className === "string" ? el.className.trim().split(/\s+/) : [];
    const id = el.id ? "#" + el.id : "";
    const dotted = classes.filter(Boolean).map((c) => "." + c).join("");
    return `${el.tagName.toLowerCase()}${id}${dotted} "${name.slice(0, 40)}"`;
  };
  const shown = (el) => {
    if (!el.getClientRects().length) return false;
    if (el.closest("[hidden], dialog:not([open]), .sr-only, .hidden")) return false;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") return false;
    const box = el.getBoundingClientRect();
    // Moved out of view on purpose until it has focus (the skip link; checked focused, below).
    if (box.right <= 0 && el !== document.activeElement) return false;
    return box.width > 1 && box.height > 1;
  };
  // The nearest ancestor that scrolls sideways by design (a data table's box), if any.
  const scroller = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      const overflow = getComputedStyle(up).overflowX;
      if (overflow === "auto" || overflow === "scroll") return up;
    }
    return null;
  };

  const scrollWidth = document.documentElement.scrollWidth;
  if (scrollWidth > width) problems.push(`the page is ${scrollWidth} px wide in ${width} px`);

  const controls = [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary," +
      " [role=button], [tabindex='0']"
  )].filter(shown);
  for (const el of controls) {
    const box = el.getBoundingClientRect();
    const frame = scroller(el);
    const left = frame ? frame.getBoundingClientRect().left - frame.scrollLeft : 0;
    const right = frame ? left + frame.scrollWidth : width;
    if (box.left < left - 1 || box.right > right + 1) {
      const span = `${Math.round(box.left)}–${Math.round(box.right)}`;
      problems.push(`${describe(el)} is off screen: ${span} of ${Math.round(right)} px`);
    }
  }
  // Two controls on top of each other (neither inside the other, nor a label and its field).
  for (let i = 0; i < controls.length; i++) {
    for (let j = i + 1; j < controls.length; j++) {
      const a = controls[i], b = controls[j];
      if (a.contains(b) || b.contains(a)) continue;
      // The focused skip link floats over the header on purpose, and only while focused.
      if (a === document.activeElement || b === document.activeElement) continue;
      const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
      const x = Math.min(p.right, q.right) - Math.max(p.left, q.left);
      const y = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
      if (x > 2 && y > 2) {
        const size = `${Math.round(x)}×${Math.round(y)} px`;
        problems.push(`${describe(a)} overlaps ${describe(b)} (${size})`);
      }
    }
  }
  // Text cut off by a box that hides what does not fit (an ellipsis with the whole text as
  // its title is a deliberate, readable shortening).
  for (const el of document.body.querySelectorAll("*")) {
    if (!shown(el) || el.closest("svg, video, canvas, textarea, input, select, pre")) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const hidesX = style.overflowX === "hidden" || style.overflowX === "clip";
    const hidesY = style.overflowY === "hidden" || style.overflowY === "clip";
    const cutX = hidesX && el.scrollWidth > el.clientWidth + 1;
    const cutY = hidesY && el.scrollHeight > el.clientHeight + 1;
    const shortened = style.textOverflow === "ellipsis" && el.title;
    if ((cutX && !shortened) || cutY) problems.push(`${describe(el)}: its text is cut off`);
  }
  return problems;
}"""


@pytest.fixture
def zoomed(browser, live_server) -> Iterator:
    context = browser.new_context(base_url=live_server.url, viewport=ZOOMED, device_scale_factor=2)
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors = watch_for_script_errors(page)
    yield page
    context.close()
    assert errors == []


def screenshot(page, name: str) -> None:
    """The page at 200 %, from the top: at most 2500 CSS px of it (5000 device px), which keeps
    a long list (the records page of a busy test database) from taking a minute to capture."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = min(page.evaluate("document.documentElement.scrollHeight"), 2500)
    page.screenshot(
        path=str(SCREENSHOTS / f"{name}.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": ZOOMED["width"], "height": height},
        timeout=60_000,
    )


def name_of(role: str, path: str) -> str:
    return f"{role}-{re.sub(r'[^a-z]+', '-', path.replace('{share}', 'share')).strip('-')}"


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_every_main_page_at_200_percent_zoom(zoomed, live_server, rt, people, lang):  # noqa: F811
    page = zoomed
    set_language(rt, people, lang)
    page.context.add_cookies([{"name": "cr_lang", "value": lang, "url": live_server.url}])
    problems: dict[str, list[str]] = {}
    page.goto("/login")
    settle(page)
    problems["sign-in"] = page.evaluate(LAYOUT_PROBLEMS)
    page.locator(".skip-link").focus()  # it comes into view when it has focus
    assert page.evaluate("document.activeElement.className") == "skip-link"
    problems["sign-in, skip link focused"] = page.evaluate(LAYOUT_PROBLEMS)
    screenshot(page, f"zoom200-sign-in-{lang}")
    for role, paths in PAGES.items():
        sign_in(page, people[role].login, PASSWORD)
        for path in paths:
            page.goto(path.format(share=people["share"]))
            settle(page)
            page.wait_for_timeout(150)  # the scripts' last layout (times, badges)
            assert page.evaluate("document.documentElement.clientWidth") == ZOOMED["width"]
            problems[name_of(role, path)] = page.evaluate(LAYOUT_PROBLEMS)
            screenshot(page, f"zoom200-{name_of(role, path)}-{lang}")
        page.context.clear_cookies()
        page.context.add_cookies([{"name": "cr_lang", "value": lang, "url": live_server.url}])
    found = {name: items for name, items in problems.items() if items}
    assert found == {}, "\n".join(
        f"{name} ({lang}):\n    " + "\n    ".join(items) for name, items in found.items()
    )
    assert len(problems) == 2 + sum(map(len, PAGES.values()))


def test_the_layout_check_sees_what_it_must(zoomed, live_server):
    """The check itself: a page made to break it in each way is caught."""
    page = zoomed
    page.goto("/login")
    page.evaluate(
        """() => {
          const main = document.querySelector("main");
          const wide = document.createElement("div");
          wide.style.width = "900px";
          wide.textContent = "wide";
          const out = document.createElement("button");
          out.textContent = "Off screen";
          out.style.cssText = "position: absolute; left: 600px; width: 120px";
          const over = document.createElement("a");
          over.href = "#";
          over.textContent = "On top";
          over.style.cssText = "position: absolute; left: 600px; width: 120px";
          const cut = document.createElement("p");
          cut.textContent = "A long sentence that does not fit in its narrow box at all";
          cut.style.cssText = "width: 60px; white-space: nowrap; overflow: hidden";
          main.append(wide, out, over, cut);
        }"""
    )
    problems = "\n".join(page.evaluate(LAYOUT_PROBLEMS))
    assert re.search(r"the page is \d+ px wide in 640 px", problems)
    assert 'button "Off screen" is off screen' in problems
    assert 'button "Off screen" overlaps a "On top"' in problems
    assert 'p "A long sentence' in problems and "cut off" in problems
