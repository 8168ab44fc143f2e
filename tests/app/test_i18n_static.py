"""Every word a person reads goes through the catalog (SPEC §14, issue 16: "a test fails when a
template or script string is not in the catalog").

tests/app/test_i18n.py checks that what is *wrapped* is extracted and translated; this module
checks that nothing user-visible is left *unwrapped*, by reading the sources:

- Templates (app/templates/**): Jinja's lexer splits the source into its own blocks and the
  HTML around them; each ``{{ … }}`` becomes a placeholder and ``{% trans %}`` bodies count as
  wrapped. The HTML is then parsed: a text node or a user-facing attribute (``title``,
  ``aria-label``, ``placeholder``, ``alt``, a submit/button input's ``value`` …) with a letter
  in it, outside ``<script>``/``<style>``, is a bare literal. Jinja's parser also finds string
  literals that an output expression prints (``{{ "Open" if x else "Closed" }}``).
- Page scripts (app/static/js/**, app/static/embed/**): a small tokenizer finds string and
  template literals that reach the page as text — assigned to ``textContent``/``innerText``/
  ``title``/``placeholder``/``alt``/``ariaLabel``, set with ``setAttribute("aria-label"|…)``,
  given as a text key of an object (``text:``, ``title:``, ``"aria-label":``, ``body:``,
  ``confirmLabel:`` — the kit's ``el()`` and ``confirmDialog()``), as a child of ``el()``, to
  ``append()``/``replaceChildren()``…, or to the message helpers (``toast``, ``showError``,
  ``alert``, ``confirm``, ``new Error``) — and are not inside the catalog function ``t()``/``tn()``.

What may stay literal is in ALLOWED below, each with its reason; it is not a list of
untranslated interface text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment, nodes

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "app" / "templates"
SCRIPTS = [ROOT / "app" / "static" / "js", ROOT / "app" / "static" / "embed"]

# Literal text that reads the same in every language, and why.
ALLOWED = {
    "consent-replay",  # the product's name
    "MiB",  # a unit (IEC), written so in Norwegian too
    "UTC",  # a time zone's name
    "JWT",  # a standard's name (the receipt's machine-readable form)
    "JSON",  # a format's name
    "CSV",  # a format's name
    "API",  # a technical name, "API" in Norwegian too (GLOSSARY: "API-nøkkel")
    # Each language named in its own words, so a reader finds theirs whatever the page's
    # language is (the language choices).
    "English",
    "Norsk bokmål",
    "Norsk",
}

LETTER = re.compile(r"[^\W\d_]")
MARK = "\ue000"  # a ``{{ … }}`` or ``{% trans %}`` body in a template; a ``${…}`` in a script
MARKS = re.compile("[\ue000-\uf8ff]")  # (one private-use character for each)


def needs_translation(text: str) -> bool:
    text = MARKS.sub(" ", text)
    for phrase in sorted(ALLOWED, key=len, reverse=True):  # "Norsk bokmål" before "Norsk"
        text = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", " ", text)
    return bool(LETTER.search(text))


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text!r}"


# --- templates --------------------------------------------------------------------------------

ENV = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)  # parsed only, never rendered
# Attributes a person reads (or hears from a screen reader).
TEXT_ATTRIBUTES = {
    "title",
    "aria-label",
    "aria-description",
    "aria-roledescription",
    "aria-valuetext",
    "aria-placeholder",
    "placeholder",
    "alt",
    "label",
}
BUTTON_INPUTS = {"submit", "button", "reset"}
# Elements whose text is not prose: scripts, styles, and code shown as code (the embed
# example's HTML and JavaScript to copy).
NOT_PROSE = {"script", "style", "pre", "code"}


def _attribute_blocks() -> set[str]:
    """The blocks base.html fills into an attribute (``<body class="{% block body_class %}``):
    a page's content for them is a class name, not text."""
    base = (TEMPLATES / "base.html").read_text(encoding="utf-8")
    return set(re.findall(r'="[^"]*\{%-?\s*block\s+(\w+)', base))


def printed_literals(node: nodes.Node) -> list[str]:
    """The string constants an output expression can print as they are."""
    if isinstance(node, nodes.Const):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, nodes.CondExpr):
        return printed_literals(node.expr1) + (
            printed_literals(node.expr2) if node.expr2 is not None else []
        )
    if isinstance(node, nodes.Concat):
        return [text for part in node.nodes for text in printed_literals(part)]
    if isinstance(node, (nodes.Add, nodes.Or, nodes.And)):
        return printed_literals(node.left) + printed_literals(node.right)
    if isinstance(node, nodes.Mod):  # "%s …" % x
        return printed_literals(node.left)
    if isinstance(node, nodes.Filter) and node.node is not None:
        extra = (
            [t for arg in node.args for t in printed_literals(arg)]
            if node.name == "default"
            else []
        )
        return printed_literals(node.node) + extra
    return []  # a call (gettext among them), a variable, a lookup: not a literal of ours


def skeleton(source: str) -> tuple[str, list[list[str]]]:
    """The template's HTML with every Jinja construct taken out, lines kept where they were:
    the n-th ``{{ … }}`` becomes the mark chr(0xE000 + n), with the string literals it would
    print as they are in ``literals[n]``; a ``{% trans %}`` body becomes a mark with none (it
    is translated); a statement becomes nothing, and so does the content of a block that
    base.html puts into an attribute."""
    out: list[str] = []
    literals: list[list[str]] = []
    in_trans = False
    in_attribute_block = 0
    attribute_blocks = _attribute_blocks()
    block: list[tuple[int, str, str]] = []
    for lineno, kind, value in ENV.lex(source):
        if kind == "data" and not block:
            if in_trans or in_attribute_block:
                out.append("\n" * value.count("\n"))
            else:
                out.append(value)
            continue
        block.append((lineno, kind, value))
        if kind not in ("variable_end", "block_end", "comment_end"):
            continue
        names = [v for _, k, v in block if k == "name"]
        if block[0][1] == "variable_begin" and not in_trans and not in_attribute_block:
            expression = ENV.parse("".join(v for _, _, v in block))
            output = next(expression.find_all(nodes.Output))
            literals.append([t for child in output.nodes for t in printed_literals(child)])
            out.append(chr(0xE000 + len(literals) - 1))
        elif block[0][1] == "block_begin" and names:
            if names[0] == "trans":
                in_trans = True
                literals.append([])
                out.append(chr(0xE000 + len(literals) - 1))
            elif names[0] == "endtrans":
                in_trans = False
            elif names[0] == "block" and names[1] in attribute_blocks:
                in_attribute_block += 1
            elif names[0] == "endblock" and in_attribute_block:
                in_attribute_block -= 1
        out.append("\n" * (block[-1][0] - block[0][0]))
        block = []
    return "".join(out), literals


class _TextFinder(HTMLParser):
    def __init__(self, path: str, literals: list[list[str]]) -> None:
        super().__init__(convert_charrefs=True)
        self.path = path
        self.literals = literals
        self.hidden = 0  # inside <script>, <style>, <pre> or <code>
        self.hits: list[Hit] = []

    def _check(self, text: str, shown: str) -> None:
        """``text`` is read by a person: its own words, and what its marks print as literals."""
        line = self.getpos()[0]
        if needs_translation(text):
            self.hits.append(Hit(self.path, line, " ".join(MARKS.sub("…", shown).split())))
        for mark in MARKS.findall(text):
            for literal in self.literals[ord(mark) - 0xE000]:
                if needs_translation(literal):
                    self.hits.append(Hit(self.path, line, literal))

    def handle_starttag(self, tag, attrs):
        if tag in NOT_PROSE:
            self.hidden += 1
        values = dict(attrs)
        for name, value in attrs:
            if value is None:
                continue
            shown = name in TEXT_ATTRIBUTES or (
                name == "value" and tag == "input" and values.get("type") in BUTTON_INPUTS
            )
            if shown:
                self._check(value, f'{name}="{value}"')

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in NOT_PROSE:
            self.hidden -= 1

    def handle_endtag(self, tag):
        if tag in NOT_PROSE:
            self.hidden = max(0, self.hidden - 1)

    def handle_data(self, data):
        if not self.hidden:
            self._check(data, data)


def template_hits(source: str, name: str) -> list[Hit]:
    html, literals = skeleton(source)
    finder = _TextFinder(name, literals)
    finder.feed(html)
    finder.close()
    return finder.hits


# --- page scripts -----------------------------------------------------------------------------

_JS_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<comment>//[^\n]*|/\*.*?\*/)
    |(?P<string>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
    |(?P<name>[A-Za-z_$][\w$]*)
    |(?P<number>\d[\w.]*)
    |(?P<punct>=>|\.\.\.|\?\.|\?\?=?|===|!==|\*\*=?|>>>=?|<<=|>>=|==|!=|<=|>=|&&=?|\|\|=?
        |\+\+|--|[-+*/%&|^]=|<<|>>>?|[{}()\[\];,.<>?:!~=+\-*/%&|^@#])""",
    re.S | re.X,
)
_KEYWORDS = {
    "return",
    "typeof",
    "case",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "else",
    "do",
    "await",
    "yield",
    "instanceof",
    "if",
    "while",
    "for",
    "switch",
    "catch",
}


@dataclass
class Tok:
    kind: str  # name, string, template, number, punct, regexp
    value: str
    line: int


def _template_end(source: str, start: int) -> int:
    """The index just after the template literal that starts at ``start`` (a backtick)."""
    i = start + 1
    while i < len(source):
        char = source[i]
        if char == "\\":
            i += 2
            continue
        if char == "`":
            return i + 1
        if source.startswith("${", i):
            i = _substitution_end(source, i + 2)
            continue
        i += 1
    raise ValueError("unterminated template literal")


def _substitution_end(source: str, i: int) -> int:
    depth = 1
    while depth:
        char = source[i]
        if char == "`":
            i = _template_end(source, i)
            continue
        if char in "\"'":
            match = _JS_TOKEN.match(source, i)
            assert match and match.lastgroup == "string"
            i = match.end()
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        i += 1
    return i


def js_tokens(source: str) -> list[Tok]:
    tokens: list[Tok] = []
    i = 0
    while i < len(source):
        line = source.count("\n", 0, i) + 1
        if source[i] == "`":
            end = _template_end(source, i)
            tokens.append(Tok("template", source[i:end], line))
            i = end
            continue
        previous = tokens[-1] if tokens else None
        regex_may_start = (
            previous is None
            or (previous.kind == "punct" and previous.value not in (")", "]", "}"))
            or (previous.kind == "name" and previous.value in _KEYWORDS)
        )
        if source[i] == "/" and regex_may_start and not source.startswith(("//", "/*"), i):
            j, in_class = i + 1, False
            while source[j] != "/" or in_class:
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                j += 1
            j += 1
            while j < len(source) and source[j].isalpha():
                j += 1
            tokens.append(Tok("regexp", source[i:j], line))
            i = j
            continue
        match = _JS_TOKEN.match(source, i)
        if match is None:
            raise ValueError(f"cannot read the script at line {line}: {source[i : i + 20]!r}")
        if match.lastgroup not in ("space", "comment"):
            tokens.append(Tok(match.lastgroup or "", match.group(), line))
        i = match.end()
    return tokens


def literal_text(token: Tok) -> str:
    if token.kind == "string":
        return token.value[1:-1]
    # A template literal: its own text, without the ${…} it fills in.
    body, out, i = token.value[1:-1], [], 0
    while i < len(body):
        if body.startswith("${", i):
            i = _substitution_end(body, i + 2)
            out.append(MARK)
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


CATALOG_CALLS = {"t", "tn"}
TEXT_PROPERTIES = {
    "textContent",
    "innerText",
    "title",
    "placeholder",
    "alt",
    "ariaLabel",
    "ariaDescription",
    "ariaValueText",
    "label",
}
TEXT_KEYS = {
    "text",
    "textContent",
    "title",
    "aria-label",
    "aria-description",
    "placeholder",
    "alt",
    "body",
    "confirmLabel",
}
# Local variables that hold a text to show, by their name.
TEXT_VARIABLES = {"text", "label", "message", "note", "caption", "summary", "status"}
# The message helpers and the argument (by position) that a person reads.
MESSAGE_CALLS = {"toast": 0, "showError": 1, "alert": 0, "confirm": 0, "createTextNode": 0}
NODE_INSERTS = {"append", "prepend", "replaceChildren", "before", "after", "replaceWith"}
COMPARISONS = {"===", "!==", "==", "!="}
OPENERS, CLOSERS = {"(": ")", "[": "]", "{": "}"}, {")", "]", "}"}


def _close(tokens: list[Tok], i: int) -> int:
    """The index of the bracket that closes the one at ``i``."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].kind == "punct" and tokens[j].value in OPENERS:
            depth += 1
        elif tokens[j].kind == "punct" and tokens[j].value in CLOSERS:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced brackets")


def _expression_end(tokens: list[Tok], i: int) -> int:
    """The index just after the expression that starts at ``i`` (up to a , ; or a closer)."""
    j = i
    while j < len(tokens):
        token = tokens[j]
        if token.kind == "punct":
            if token.value in OPENERS:
                j = _close(tokens, j) + 1
                continue
            if token.value in CLOSERS or token.value in (",", ";"):
                return j
        j += 1
    return j


def _arguments(tokens: list[Tok], open_index: int) -> list[tuple[int, int]]:
    """The (start, end) of each argument of the call whose ( is at ``open_index``."""
    end = _close(tokens, open_index)
    spans, start = [], open_index + 1
    while start < end:
        stop = _expression_end(tokens, start)
        spans.append((start, stop))
        start = stop + 1
    return spans


def _is_call(tokens: list[Tok], open_index: int) -> bool:
    before = tokens[open_index - 1] if open_index else None
    return before is not None and (
        (before.kind == "name" and before.value not in _KEYWORDS)
        or (before.kind == "punct" and before.value in (")", "]"))
    )


def shown_literals(tokens: list[Tok], start: int, end: int) -> list[Tok]:
    """The literals in tokens[start:end] that become the text itself: not inside t()/tn(), nor
    an argument of another call, an index, an array or object, nor one side of a comparison."""
    found = []
    j = start
    while j < end:
        token = tokens[j]
        if token.kind == "punct" and token.value in OPENERS:
            grouping = token.value == "(" and not _is_call(tokens, j)
            if not grouping:  # a call (t() among them), an index, an array, an object
                j = _close(tokens, j) + 1
                continue
        elif token.kind in ("string", "template"):
            around = {tokens[k].value for k in (j - 1, j + 1) if 0 <= k < len(tokens)}
            if not around & COMPARISONS and not (j + 1 < end and tokens[j + 1].value == "."):
                found.append(token)
        j += 1
    return found


def _object_text_values(tokens: list[Tok], open_index: int) -> list[Tok]:
    found = []
    for start, end in _arguments(tokens, open_index):  # an object's entries split like arguments
        if end - start >= 3 and tokens[start + 1].value == ":":
            key = tokens[start]
            name = key.value[1:-1] if key.kind == "string" else key.value
            if name in TEXT_KEYS:
                found += shown_literals(tokens, start + 2, end)
    return found


def script_hits(source: str, name: str) -> list[Hit]:
    tokens = js_tokens(source)
    found: list[Tok] = []
    for i, token in enumerate(tokens):
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        before = tokens[i - 1] if i else None
        if after is None:
            break
        # node.textContent = …, node.title += …
        if (
            token.kind == "name"
            and token.value in TEXT_PROPERTIES
            and before is not None
            and before.value in (".", "?.")
            and after.value in ("=", "+=")
        ) or (
            token.kind == "name"
            and token.value in TEXT_VARIABLES
            and (before is None or before.value not in (".", "?."))
            and after.value in ("=", "+=")
        ):
            found += shown_literals(tokens, i + 2, _expression_end(tokens, i + 2))
        # { text: …, "aria-label": … } wherever an object is written
        elif token.kind == "punct" and token.value == "{" and before is not None:
            if before.value in ("(", ",", "=", ":", "?", "return", "=>", "[", "||", "??"):
                found += _object_text_values(tokens, i)
        elif token.kind == "name" and after.value == "(" and token.value not in CATALOG_CALLS:
            found += _call_literals(tokens, i)
    unique = {id(token): token for token in found}.values()  # in the order of the source
    return [
        Hit(name, token.line, MARKS.sub("…", literal_text(token)))
        for token in sorted(unique, key=tokens.index)
        if needs_translation(literal_text(token))
    ]


def _call_literals(tokens: list[Tok], i: int) -> list[Tok]:
    """The shown literals of the call of ``tokens[i]`` (a name followed by its "(")."""
    token, before = tokens[i], tokens[i - 1] if i else None
    found: list[Tok] = []
    spans = _arguments(tokens, i + 1)
    method = before is not None and before.value in (".", "?.")
    if token.value == "setAttribute" and len(spans) == 2:
        attribute = tokens[spans[0][0]]
        if attribute.kind == "string" and attribute.value[1:-1] in TEXT_ATTRIBUTES:
            found += shown_literals(tokens, *spans[1])
    elif token.value in MESSAGE_CALLS and len(spans) > MESSAGE_CALLS[token.value]:
        found += shown_literals(tokens, *spans[MESSAGE_CALLS[token.value]])
    elif token.value == "Error" and before is not None and before.value == "new" and spans:
        # An Error's message is read where a caller shows it (toast(error.message)),
        # which a reading of the source cannot follow: one that reads as a sentence is
        # taken to be for people; a lower-case note ("ended") is the code's own.
        found += [
            literal
            for literal in shown_literals(tokens, *spans[0])
            if re.match(r"[A-Z]\S*(\s+\S+){2,}", literal_text(literal))
        ]
    elif token.value == "el" and not method:
        for span in spans[2:]:  # the children; the attributes are an object (above)
            found += shown_literals(tokens, *span)
    elif token.value in NODE_INSERTS and method and not _form_data(tokens, i - 2):
        for span in spans:
            found += shown_literals(tokens, *span)
    return found


def _form_data(tokens: list[Tok], receiver: int) -> bool:
    """``form.append("title", value)`` and the like fill a FormData or URLSearchParams: keys
    and values, not text on the page."""
    word = tokens[receiver].value if receiver >= 0 else ""
    return bool(re.search(r"form|data|params|search|headers|body$", word, re.I))


# --- the tests --------------------------------------------------------------------------------


def _templates() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


def _scripts() -> list[Path]:
    return sorted(path for folder in SCRIPTS for path in folder.rglob("*.js"))


def test_the_sources_are_there():
    assert len(_templates()) >= 20 and len(_scripts()) >= 20


@pytest.mark.parametrize("path", _templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_template_text_goes_through_gettext(path):
    hits = template_hits(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not hits, 'wrap these in {{ _("…") }}:\n' + "\n".join(map(str, hits))


@pytest.mark.parametrize(
    "path", _scripts(), ids=lambda p: str(p.relative_to(ROOT / "app" / "static"))
)
def test_script_text_goes_through_the_catalog(path):
    hits = script_hits(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not hits, 'wrap these in t("…"):\n' + "\n".join(map(str, hits))


# --- the checker checks what it says ------------------------------------------------------------


@pytest.mark.parametrize(
    "template, bare",
    [
        ('<p>{{ _("Fine") }}</p><p>Not fine</p>', ["Not fine"]),
        ('<button title="Close">{{ _("x") }}</button>', ['title="Close"']),
        ("<input type=submit value='Send'><input name=q value='kept'>", ['value="Send"']),
        ('<span aria-label="{{ _("Menu") }}">·</span><img alt="Logo {{ n }}">', ['alt="Logo …"']),
        ("{% trans %}Hello {{ name }}{% endtrans %}<p>{% if x %}Open{% endif %}</p>", ["Open"]),
        ('{{ "Yes" if ok else _("No") }} {{ value or "–" }}', ["Yes"]),
        ('<a class="{{ "active" if here }}" title="{{ "Home" if here }}">', ["Home"]),
        ("<p>Copy <code>pip install x</code></p><pre>curl -H 'Accept: text/html'</pre>", ["Copy"]),
        ("{% block body_class %}auth{% endblock %}{% block content %}Hi{% endblock %}", ["Hi"]),
        ("<script>const a = 'Words';</script><style>p::after{content:'x'}</style>", []),
        ("<p>consent-replay · 12 MiB</p><p>12 files</p>", ["12 files"]),  # brand, unit: allowed
    ],
)
def test_the_template_check_finds_bare_text(template, bare):
    assert [hit.text for hit in template_hits(template, "example.html")] == bare


@pytest.mark.parametrize(
    "script, bare",
    [
        ('node.textContent = "Saved";', ["Saved"]),
        ('node.textContent = t("Saved"); node.title = ok ? t("Yes") : "No";', ["No"]),
        (
            'el("p", { class: "muted small", text: "Nothing yet" }, "More", t("Fine"));',
            ["Nothing yet", "More"],
        ),
        (
            'toast("Copied."); toast(t("Copied.")); showError(box, `Failed: ${why}`);',
            ["Copied.", "Failed: …"],
        ),
        (
            'button.setAttribute("aria-label", "Close"); node.setAttribute("data-x", "kept");',
            ["Close"],
        ),
        (
            'confirmDialog({ title: t("Sure?"), body: "It goes.", confirmLabel: "Go" });',
            ["It goes.", "Go"],
        ),
        ('form.append("title", title); list.append("Loose words");', ["Loose words"]),
        ('if (kind === "ready") node.textContent = kind === "x" ? t("A") : t("B");', []),
        ('throw new Error("The upload failed."); const re = /"quoted"/g;', ["The upload failed."]),
        ('throw new Error("ended"); throw new Error(`HTTP ${status}`);', []),  # the code's own
        (
            'let text = t("Sending"); text += " · catching up"; line.textContent = text;',
            [" · catching up"],
        ),
    ],
)
def test_the_script_check_finds_bare_text(script, bare):
    assert [hit.text for hit in script_hits(script, "example.js")] == bare
