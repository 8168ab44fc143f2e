"""The pages' scripts are ES modules loaded from /static (strict CSP, no build step): every
module a page loads, and everything it imports, is served as JavaScript (a browser refuses a
module of another type) and builds no HTML from strings; the kit is imported, not a global."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
SCRIPT_TAG = re.compile(
    r"<script\b([^>]*)\bsrc=\"\{\{ url_for\('static', filename='([^']+)'\) \}\}\""
)
IMPORT = re.compile(r'^import\s[^;]*?\sfrom\s"(\.{1,2}/[^"]+)";', re.M)
# The embeddable opt-in button runs on other sites' pages: a classic script on purpose. The
# vendored tus-js-client is a browser bundle that defines window.tus, loaded before the modules.
CLASSIC = {"embed/optin.js", "vendor/tus-js-client/tus.min.js"}


def page_entries() -> dict[str, str]:
    """Each script a template loads, with the template's attributes on its tag."""
    entries = {}
    for template in sorted((APP / "templates").rglob("*.html")):
        for attrs, name in SCRIPT_TAG.findall(template.read_text()):
            entries[name] = attrs
    return entries


def module_graph() -> set[str]:
    todo = [name for name in page_entries() if name not in CLASSIC]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = (APP / "static" / name).read_text()
        for target in IMPORT.findall(source):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(name), target)))
    return seen


def test_every_page_script_is_a_module_but_the_embed():
    entries = page_entries()
    assert "js/player/main.js" in entries and "js/kit.js" not in entries
    for name, attrs in entries.items():
        assert ('type="module"' in attrs) == (name not in CLASSIC), name


def test_the_module_graph_is_served_as_javascript(client):
    graph = module_graph()
    for part in ("timeline", "waveform", "comments", "watch", "shortcuts", "controls", "media"):
        assert f"js/player/{part}.js" in graph
    assert {"js/kit.js", "js/receipts.js"} <= graph
    for name in sorted(graph):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert "javascript" in response.mimetype, (name, response.mimetype)
        body = response.get_data(as_text=True)
        assert "innerHTML" not in body and "insertAdjacentHTML" not in body, name


def test_nothing_lives_on_window_any_more():
    # The kit used to be window.CR / CRA / CRK, loaded by <script> order; now it is imported.
    for path in sorted((APP / "static" / "js").rglob("*.js")):
        assert not re.search(r"window\.CR[AK]?\b", path.read_text()), path
