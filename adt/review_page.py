"""The review page behind ``adt review serve``: the queue in a browser, for reviewers who would rather click.

``ReviewApp.handle(method, target, headers, body) -> Response`` is the whole application (no sockets, so it is
tested directly); ``make_server`` puts it behind the standard library's ``ThreadingHTTPServer``. Each request
opens the bank for as long as it needs it (``opener``, the CLI's ``Context.bank``), as every command does.

Decisions are ``Bank.set_review_state`` / ``Bank.edit_item`` (the states and moves: ``adtbase.review``); the tag
filter is the one ``--filter`` grammar (``adt.flags.parse_filters``); QC flags, solver answers and
near-duplicates are ``Bank.qc_flags`` (the QC contract: latest ``qc`` event per check).

``/judged`` is the human queue of judged answers (issue 15; the rules and the store are
``adt.workflow.judge_queue``): the answers where the judges' panel is uncertain, each with its question, the
candidate's answer, the baseline or reference, the judges' verdicts and the levels to choose from; a human score
is a POST to ``/score`` (same CSRF token and origin checks), stored as a judgment by ``human:<reviewer>``.

Item and model text is untrusted. Every string reaches the page through ``esc`` (HTML-escaped text and
attributes); the script gets its data from a ``<script type="application/json">`` block written by
``script_json`` (``<``, ``>``, ``&`` escaped), never from text spliced into code; the Content-Security-Policy
allows this server's own script and style only. Changes are POSTs carrying the server's CSRF token, from this
server's own origin; the Host header must name the server (DNS rebinding); a non-loopback bind needs
``--token``, checked on every request.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import re
import secrets
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adt.flags import parse_filters
from adtbase import qc as qc_vocab
from adtbase import review as states
from adtbase.errors import AdtError, InputError

if TYPE_CHECKING:
    from itembank import Bank

STATIC = Path(__file__).with_name("review_static")
STATIC_TYPES = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_BODY = 256 * 1024         # a form post: question, choices and a reason; more is not a reviewer's edit
PAGE_SIZE = 50                # items shown at once; the page says how many more the filter holds
ACTIONS = ("approve", "reject", "edit")
TOKEN_COOKIE = "adt_review_token"
NOTICES = 200                 # notices kept for the page a decision redirects to

Opener = Callable[[str], AbstractContextManager["Bank"]]


# ------------------------------------------------------------------------------------------------
# escaping: the one place untrusted text becomes HTML or script data
def esc(value: Any) -> str:
    """Text (or an attribute value in double quotes) with ``& < > " '`` escaped."""
    return html.escape("" if value is None else str(value), quote=True)


# Bidi embeddings, overrides and isolates reorder the text around them (a key that reads as another): shown as
# visible marks in item text instead of acting. Plain direction marks (U+200E/U+200F) are ordinary RTL text.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def text_html(value: Any) -> str:
    """Item or model text as HTML: ``esc``, then bidi controls made visible (``<span class="ctl">U+202E</span>``)."""
    return _BIDI_CONTROLS.sub(lambda m: f'<span class="ctl">U+{ord(m.group()):04X}</span>', esc(value))


def script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no ``<!--``, no ``&`` entity."""
    text = json.dumps(data, ensure_ascii=True, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ------------------------------------------------------------------------------------------------
# binding
def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_TOKEN = re.compile(r"[A-Za-z0-9_~.-]{12,200}")   # URL- and cookie-safe, long enough not to be guessed
_ITEM_ID = re.compile(r"it_[0-9a-f]{20}")
_CASE_DOM = re.compile(r"case-[0-9a-f]{16}")   # a judged answer's element id (``case_dom_id``)


def check_bind(host: str, token: str | None) -> None:
    """A bind beyond this machine needs a token: anyone who can reach the port could otherwise decide."""
    if token and not _TOKEN.fullmatch(token):
        raise InputError("--token: 12 to 200 letters, digits or _ ~ . - (e.g. python -c "
                         "'import secrets; print(secrets.token_urlsafe())')")
    if not is_loopback(host) and not token:
        raise InputError(f"--host {host}: binding beyond this machine (not 127.0.0.1, ::1 or localhost) needs "
                         f"--token T; reviewers then open http://HOST:PORT/?token=T")


# ------------------------------------------------------------------------------------------------
# the queue: what the page shows
@dataclass(frozen=True)
class Query:
    """The page's view: a review state, tag filters in the ``--filter`` grammar, a QC flag ("" any, "none":
    unflagged)."""

    state: str = states.DRAFT
    filters: tuple[str, ...] = ()
    flag: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[str]]) -> Query:
        state = (params.get("state") or [states.DRAFT])[0]
        return cls(state=state if state in states.STATES else states.DRAFT,
                   filters=tuple(f.strip() for f in params.get("filter", ()) if f.strip()),
                   flag=(params.get("flag") or [""])[0].strip())

    def as_params(self) -> str:
        pairs = [("state", self.state), *(("filter", f) for f in self.filters)]
        if self.flag:
            pairs.append(("flag", self.flag))
        return urllib.parse.urlencode(pairs)


@dataclass
class Queue:
    query: Query
    items: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0                   # items the state and filters select (before the page size)
    flags: list[str] = field(default_factory=list)   # QC flags carried by the selected items (the flag menu)
    problem: str | None = None       # a filter the bank refused, said on the page


def _qc_flags(bank: Bank, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return dict(bank.qc_flags(list(ids))) if ids else {}


def load_queue(bank: Bank, query: Query, limit: int = PAGE_SIZE) -> Queue:
    out = Queue(query)
    try:
        tag_filters = parse_filters(query.filters)
        bank.check_filter_values(tag_filters)
        frame = bank.items({**tag_filters, "review_state": [query.state]},
                           include_retired=query.state == states.RETIRED, with_tags=False)
    except AdtError as exc:
        out.problem = str(exc)
        return out
    ids = [str(i) for i in frame["item_id"]]
    qc = _qc_flags(bank, ids)
    flags = {i: qc_vocab.current_flags(qc.get(i, {})) for i in ids}
    out.flags = sorted({f for fl in flags.values() for f in fl})
    if query.flag == "none":
        ids = [i for i in ids if not flags[i]]
    elif query.flag:
        ids = [i for i in ids if query.flag in flags[i]]
    out.total = len(ids)
    shown = ids[:limit]
    if not shown:
        return out
    # One read for the shown items, their tags and aliases, one for the items they point at (parents,
    # near-duplicates): Bank.item per item costs the whole item view each time (~60 ms at 50k items).
    decisions = bank.review_decisions(shown)
    aliases = bank.aliases_of(shown)
    tag_keys = set(bank.tag_keys())
    records = {str(r["item_id"]): r for r in _records(bank.items({"item_id": shown}, include_retired=True))}
    for item_id in shown:
        rec = records[item_id]
        # tag values come joined by "|" (the item frame's form); the page shows them as a list
        rec["tags"] = {k: str(rec.pop(k)).split("|") for k in sorted(tag_keys & set(rec)) if rec[k] is not None}
        rec["aliases"] = aliases.get(item_id, [])
        rec["qc"] = qc.get(item_id, {})
        rec["flags"] = flags[item_id]
        rec["last_decision"] = decisions.get(item_id)
        out.items.append(rec)
    pointed = sorted({str(p) for r in out.items for p in [r.get("parent_item_id"), *_matched_ids(r["qc"])] if p})
    others = {str(r["item_id"]): {k: r.get(k) for k in ("item_id", "question", "choices", "answer", "review_state",
                                                         "source")}
              for r in (_records(bank.items({"item_id": pointed}, include_retired=True, with_tags=False))
                        if pointed else [])}
    for rec in out.items:
        rec["parent"] = others.get(str(rec.get("parent_item_id")))
        rec["neighbours"] = {m: others.get(m) for m in _matched_ids(rec["qc"])}
    return out


def _matched_ids(qc: Mapping[str, Any]) -> list[str]:
    ids: list[str] = []
    for check in ("near_duplicate", "leakage"):
        for m in (qc.get(check, {}).get("detail") or {}).get("matches", ()) or ():
            if isinstance(m, Mapping) and m.get("item_id") and str(m["item_id"]) not in ids:
                ids.append(str(m["item_id"]))
    return ids


def _records(frame: Any) -> list[dict[str, Any]]:
    """Rows of an item frame as plain values (lists, None for missing) for the page and its JSON block."""
    out = []
    for row in frame.to_dict("records"):
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if hasattr(v, "tolist"):
                v = v.tolist()
            elif isinstance(v, float) and v != v:   # NaN: a column this item has no value in
                v = None
            rec[str(k)] = v
        out.append(rec)
    return out


# ------------------------------------------------------------------------------------------------
# decisions
def decide(bank: Bank, form: Mapping[str, str]) -> tuple[bool, str]:
    """Apply one decision posted by the page: ``(done, message)``. A decision made on a stale view (the item's
    state is no longer the one the reviewer saw) is refused with who decided and when; nothing is written."""
    action, ref = form.get("action", ""), form.get("item", "").strip()
    reviewer = form.get("reviewer", "").strip()
    if action not in ACTIONS:
        return False, f"unknown action {action!r}: use one of {', '.join(ACTIONS)}"
    if not reviewer:
        return False, "say who you are: type your name in the reviewer box first"
    if len(reviewer) > 200:
        return False, "reviewer name: at most 200 characters"
    try:
        item_id = bank.resolve(ref)
        now = str(bank.item(item_id)["review_state"])
        seen = form.get("seen", "")
        if seen != now:
            last = bank.review_decisions([item_id]).get(item_id) or {}
            who = f"{last.get('state', now)} by {last.get('reviewer') or 'someone'} at {last.get('ts', '?')}"
            why = f" ({last['reason']})" if last.get("reason") else ""
            return False, (f"{ref} was {seen or '?'} when you loaded the page and is now {now}: {who}{why}. "
                           f"Nothing changed; reload to see it")
        if action == "approve":
            bank.set_review_state([item_id], states.APPROVED, reason=form.get("reason") or None, reviewer=reviewer)
            return True, f"{ref} approved by {reviewer}"
        if action == "reject":
            bank.set_review_state([item_id], states.REJECTED, reason=form.get("reason", ""), reviewer=reviewer)
            return True, f"{ref} rejected by {reviewer}"
        new_id = bank.edit_item(item_id, reviewer=reviewer, reason=form.get("reason") or None,
                                **edited_fields(bank.item(item_id), form))
        return True, f"{ref} edited by {reviewer}: new draft {new_id} (parent {item_id})"
    except AdtError as exc:
        return False, str(exc)


def edited_fields(rec: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The fields an edit form changes, as ``Bank.edit_item`` takes them. A field sent as it was shown is left
    out: a browser sends textareas with CRLF line ends, and the stored key is kept as stored (not re-read)."""
    out: dict[str, Any] = {}
    question = form.get("question")
    if question is not None and question.replace("\r\n", "\n") != str(rec.get("question") or ""):
        out["question"] = question.replace("\r\n", "\n")
    if form.get("choices") is not None:
        choices = [c.strip() for c in form["choices"].splitlines() if c.strip()]
        if choices != [str(c) for c in (rec.get("choices") or [])]:
            out["choices"] = choices
    answer = form.get("answer")
    if answer is not None and answer.strip() != str(rec.get("answer") or ""):
        out["answer"] = answer.strip()
    return out


def score_answer(bank: Bank, form: Mapping[str, str]) -> tuple[bool, str]:
    """Store one human score posted by the judged-answers view: ``(done, message)``."""
    from adt.workflow.judge_queue import score_case

    case, level = form.get("case", "").strip(), form.get("level", "").strip()
    if not re.fullmatch(r"\d{1,2}", level):
        return False, f"{case}: choose a level"
    try:
        out = score_case(bank, case, int(level), form.get("reviewer", ""), form.get("note", "")[:2000])
    except AdtError as exc:
        return False, str(exc)
    return True, (f"{out['case']}: level {out['level']} by {out['reviewer']}; the answer's score is now "
                  f"{out['score']:.2f}")


def _budget(query: Mapping[str, Sequence[str]]) -> float:
    from adt.workflow.judge_queue import DEFAULT_BUDGET

    try:
        value = float((query.get("budget") or [""])[0])
    except ValueError:
        return DEFAULT_BUDGET
    return value if 0.0 <= value <= 1.0 else DEFAULT_BUDGET


# ------------------------------------------------------------------------------------------------
# the application
@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


class ReviewApp:
    """The page, its decisions and its checks, for a server bound at ``host:port``."""

    def __init__(self, opener: Opener, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        check_bind(host, token)
        self.opener = opener
        self.host, self.port = host, port
        self.token = token or None
        self.csrf = secrets.token_urlsafe(32)   # per server: a page from another site cannot know it
        self._notices: OrderedDict[str, tuple[bool, str]] = OrderedDict()
        self._lock = threading.Lock()           # one request at a time holds the bank (DuckDB: one holder)

    # -- checks every request passes ------------------------------------------------------------
    def allowed_hosts(self) -> set[str]:
        names = {self.host} | ({"127.0.0.1", "localhost", "[::1]", "::1"} if is_loopback(self.host) else set())
        return {f"{n}:{self.port}" for n in names}

    def refusal(self, method: str, query: Mapping[str, Sequence[str]], headers: Mapping[str, str]) -> Response | None:
        host = headers.get("host", "")
        if is_loopback(self.host) and host not in self.allowed_hosts():
            # a page on another site that rebinds its name to 127.0.0.1 reaches us under its own name
            return _text(421, f"this server answers to {sorted(self.allowed_hosts())[0]} only")
        if self.token is not None:
            given = (query.get("token") or [""])[0] or _cookie(headers.get("cookie", ""), TOKEN_COOKIE)
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return _text(401, "a token is needed: open the address the server printed (…/?token=…)")
        if method == "POST":
            origin = headers.get("origin")
            if origin is not None and origin not in {f"http://{h}" for h in self.allowed_hosts() | {host}}:
                return _text(403, f"cross-site request refused (Origin {origin})")
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return _text(403, "cross-site request refused (Sec-Fetch-Site)")
        return None

    # -- dispatch ---------------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        headers = {k.lower(): v for k, v in headers.items()}
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        refused = self.refusal(method, query, headers)
        if refused is not None:
            return refused
        cookie = ((("Set-Cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"),)
                  if self.token and query.get("token") else ())
        if method == "GET" and url.path == "/":
            resp = self.page(query)
        elif method == "GET" and url.path.startswith("/static/") and url.path[8:] in STATIC_TYPES:
            name = url.path[8:]
            resp = Response(200, (STATIC / name).read_bytes(), (("Content-Type", STATIC_TYPES[name]),))
        elif method == "GET" and url.path == "/favicon.ico":
            resp = Response(204)   # no icon; a 404 would be a console error in every browser
        elif method == "POST" and url.path == "/decide":
            resp = self.post(headers, body)
        elif method == "GET" and url.path == "/judged":
            resp = self.judged_page(query)
        elif method == "POST" and url.path == "/score":
            resp = self.post(headers, body, score=True)
        elif url.path in ("/", "/decide", "/judged", "/score") or url.path.startswith("/static/"):
            resp = _text(405, "method not allowed")
        else:
            resp = _text(404, "not found")
        return replace(resp, headers=resp.headers + cookie + _SECURITY_HEADERS)

    def page(self, query: Mapping[str, Sequence[str]]) -> Response:
        q = Query.from_params(query)
        with self._lock:
            notice = self._notices.get((query.get("notice") or [""])[0])
            with self.opener("adt review serve: page") as bank:
                queue = load_queue(bank, q)
        return Response(200, render_page(queue, self.csrf, notice).encode(),
                        (("Content-Type", "text/html; charset=utf-8"),))

    def judged_page(self, query: Mapping[str, Sequence[str]]) -> Response:
        from adt.workflow.judge_queue import human_queue

        budget = _budget(query)
        with self._lock:
            notice = self._notices.get((query.get("notice") or [""])[0])
            with self.opener("adt review serve: judged answers") as bank:
                cases, total = human_queue(bank, budget=budget, limit=PAGE_SIZE)
        return Response(200, render_judged_page(cases, total, budget, self.csrf, notice).encode(),
                        (("Content-Type", "text/html; charset=utf-8"),))

    def post(self, headers: Mapping[str, str], body: bytes, score: bool = False) -> Response:
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _text(415, "a form post (application/x-www-form-urlencoded) is expected")
        if len(body) > MAX_BODY:
            return _text(413, f"a decision is at most {MAX_BODY} bytes")
        fields = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                                             keep_blank_values=True).items()}
        if not hmac.compare_digest(fields.get("csrf", "").encode(), self.csrf.encode()):
            return _text(403, "the form's CSRF token is missing or stale: reload the page")
        key = secrets.token_urlsafe(8)
        with self._lock:
            with self.opener("adt review serve: " + ("human score" if score else "decision")) as bank:
                done, message = score_answer(bank, fields) if score else decide(bank, fields)
            self._notices[key] = (done, message)
            while len(self._notices) > NOTICES:
                self._notices.popitem(last=False)
        if score:
            after = f"#item-{fields['next']}" if _CASE_DOM.fullmatch(fields.get("next", "")) else ""
            budget = _budget(urllib.parse.parse_qs(fields.get("back", "")))
            return Response(303, b"", (("Location", f"/judged?budget={budget}&notice={key}{after}"),))
        back = Query.from_params(urllib.parse.parse_qs(fields.get("back", "")))
        after = f"#item-{fields['next']}" if _ITEM_ID.fullmatch(fields.get("next", "")) else ""
        return Response(303, b"", (("Location", f"/?{back.as_params()}&notice={key}{after}"),))


# Referrer-Policy same-origin, not no-referrer: under no-referrer the browser sends "Origin: null" with the page's
# own posts, which could not be told from a sandboxed foreign page's.
_SECURITY_HEADERS = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                     ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store"))


def _text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode(), (("Content-Type", "text/plain; charset=utf-8"),))


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return ""


# ------------------------------------------------------------------------------------------------
# HTML
def render_page(queue: Queue, csrf: str, notice: tuple[bool, str] | None = None) -> str:
    q = queue.query
    state_opts = "".join(f'<option value="{esc(s)}"{" selected" if s == q.state else ""}>{esc(s)}</option>'
                         for s in states.STATES)
    flag_opts = "".join(f'<option value="{esc(v)}"{" selected" if v == q.flag else ""}>{esc(label)}</option>'
                        for v, label in (("", "any"), ("none", "no flag"),
                                         *((f, f) for f in sorted({*queue.flags, q.flag} - {"", "none"}))))
    filters = " ".join(esc(f) for f in q.filters)
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>adt review</title>",
        '<link rel="stylesheet" href="/static/review.css"><script src="/static/review.js" defer></script>',
        "</head><body>",
        '<header><h1>adt review</h1><nav><a href="/judged" data-testid="judged-link">judged answers</a></nav>',
        '<label>Reviewer <input id="reviewer" data-testid="reviewer" autocomplete="name" maxlength="200" '
        'placeholder="your name"></label>',
        '<form method="get" action="/" data-testid="filter-form" class="filters">',
        f'<label>State <select name="state" data-testid="state-filter">{state_opts}</select></label>',
        f'<label>Tags <input name="filter" data-testid="tag-filter" value="{filters}" '
        'placeholder="domain=math,law"></label>',
        f'<label>QC flag <select name="flag" data-testid="flag-filter">{flag_opts}</select></label>',
        "<button>Show</button></form>",
        '<p class="keys">j / k: next / previous · a: approve · r: reject (reason, Enter) · e: edit · '
        '/: filter</p></header>',
    ]
    if notice is not None:
        done, message = notice
        parts.append(f'<p class="notice {"done" if done else "refused"}" data-testid="notice" role="status">'
                     f"{esc(message)}</p>")
    if queue.problem:
        parts.append(f'<p class="notice refused" data-testid="filter-problem">{esc(queue.problem)}</p>')
    shown = len(queue.items)
    more = f" (first {shown})" if shown < queue.total else ""
    parts.append(f'<p data-testid="count">{queue.total} items {esc(q.state)}{more}</p><main>')
    back = q.as_params()
    for rec in queue.items:
        parts.append(_item_html(rec, csrf, back))
    parts.append("</main>")
    data = {"items": [{"id": r["item_id"], "state": r["review_state"]} for r in queue.items], "state": q.state}
    parts.append(f'<script type="application/json" id="queue-data">{script_json(data)}</script>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _item_html(rec: Mapping[str, Any], csrf: str, back: str) -> str:
    iid = str(rec["item_id"])
    choices = list(rec.get("choices") or [])
    key = str(rec.get("answer") or "")
    flags = rec.get("flags") or []
    out = [f'<article class="item" id="item-{esc(iid)}" data-testid="item" data-item-id="{esc(iid)}" '
           f'data-state="{esc(rec.get("review_state"))}" data-flags="{esc(" ".join(flags))}" tabindex="-1">',
           f'<h2><code>{esc(iid)}</code> <span class="state">{esc(rec.get("review_state"))}</span> '
           f'<span class="type">{esc(rec.get("item_type"))} · {esc(rec.get("language"))}</span>'
           + "".join(f' <span class="flag" data-testid="flag">{esc(f)}</span>' for f in flags) + "</h2>",
           f'<div class="question" data-testid="question" dir="auto">{text_html(rec.get("question"))}</div>',
           _choices_html(choices, key)]
    if not choices:
        out.append(f'<p class="key">Key: <span data-testid="key" dir="auto">{esc(key or "(none)")}</span></p>')
    tags = rec.get("tags") or {}
    out.append('<dl class="meta">' + "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(', '.join(map(str, v)))}</dd>" for k, v in sorted(tags.items())) + "</dl>")
    out.append(_provenance_html(rec))
    out.append(_qc_html(rec))
    out.append(_actions_html(rec, csrf, back))
    out.append("</article>")
    return "\n".join(out)


def _choices_html(choices: Sequence[Any], key: str) -> str:
    if not choices:
        return ""
    from itembank import LETTERS  # the bank's option letters (the key is stored as one of them)

    keyed = {k.strip() for k in key.split(",")}
    rows = []
    for i, c in enumerate(choices):
        label = LETTERS[i] if i < len(LETTERS) else str(i)
        mark = ' class="key" data-key="true"' if label in keyed else ""
        rows.append(f'<li data-testid="choice" data-label="{esc(label)}"{mark}><b>{esc(label)}</b> '
                    f'<span dir="auto">{text_html(c)}</span>{" <em>(key)</em>" if mark else ""}</li>')
    return '<ol class="choices">' + "".join(rows) + "</ol>"


def _provenance_html(rec: Mapping[str, Any]) -> str:
    rows = [("origin", rec.get("origin")), ("generator", rec.get("generator")),
            ("generator params", rec.get("generator_params")),
            ("source", " ".join(str(x) for x in (rec.get("source"), rec.get("source_version")) if x)),
            ("aliases", ", ".join(rec.get("aliases") or []))]
    last = rec.get("last_decision")
    if last:
        rows.append(("last decision", f"{last.get('state')} by {last.get('reviewer') or '?'} at {last.get('ts')}"
                     + (f": {last['reason']}" if last.get("reason") else "")))
    html_rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows if v)
    parent = rec.get("parent")
    if rec.get("parent_item_id"):
        html_rows += (f'<dt>parent</dt><dd data-testid="parent"><code>{esc(rec["parent_item_id"])}</code>'
                      + (f' ({esc(parent.get("review_state"))}): <span dir="auto">{text_html(_clip(parent.get("question")))}</span>'
                         if parent else "") + "</dd>")
    return f'<dl class="meta provenance" data-testid="provenance">{html_rows}</dl>'


def _qc_html(rec: Mapping[str, Any]) -> str:
    qc = rec.get("qc") or {}
    if not qc:
        return '<p class="qc none" data-testid="qc">No QC yet (adt qc).</p>'
    out = ['<section class="qc" data-testid="qc">']
    checks = ", ".join(f"{esc(c)}: {esc(', '.join(v.get('flags') or []) or 'ok')}" for c, v in sorted(qc.items()))
    out.append(f"<p>QC {checks}</p>")
    solvers = (qc.get("solvers") or {}).get("detail") or {}
    if solvers:
        answers = solvers.get("answers") or {}
        cells = "".join(f'<tr data-testid="solver-answer"><td>{esc(m)}</td><td>{esc(a if a is not None else "no answer")}'
                        f"</td></tr>" for m, a in sorted(answers.items()))
        summary = ", ".join(f"{k} {esc(_num(solvers.get(k)))}" for k in
                            ("key", "majority", "agree_share", "majority_share", "p_key_wrong", "difficulty")
                            if solvers.get(k) is not None)
        out.append(f'<table class="solvers"><caption>Solvers: {summary}</caption>'
                   f"<tr><th>solver</th><th>answer</th></tr>{cells}</table>")
    problems = ((qc.get("schema") or {}).get("detail") or {}).get("problems") or []
    if problems:
        out.append("<ul class=\"problems\">" + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul>")
    neighbours = rec.get("neighbours") or {}
    for check in ("near_duplicate", "leakage"):
        for m in ((qc.get(check) or {}).get("detail") or {}).get("matches") or []:
            if not isinstance(m, Mapping):
                continue
            other = neighbours.get(str(m.get("item_id")))
            head = (f'{esc(check.replace("_", " "))} <code>{esc(m.get("item_id"))}</code>'
                    + (f" from {esc(m.get('source'))}" if m.get("source") else "")
                    + f" (similarity {esc(_num(m.get('similarity')))})")
            theirs = ("<em>not in the bank</em>" if other is None else
                      f'<div dir="auto">{text_html(other.get("question"))}</div>'
                      + _choices_html(list(other.get("choices") or []), str(other.get("answer") or "")))
            out.append(f'<div class="pair" data-testid="near-duplicate"><div><h3>this item</h3>'
                       f'<div dir="auto">{text_html(rec.get("question"))}</div>'
                       f'{_choices_html(list(rec.get("choices") or []), str(rec.get("answer") or ""))}</div>'
                       f"<div><h3>{head}</h3>{theirs}</div></div>")
    out.append("</section>")
    return "\n".join(out)


def _clip(text: Any, width: int = 300) -> str:
    one = str(text or "")
    return one if len(one) <= width else one[: width - 1] + "…"


def _num(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _actions_html(rec: Mapping[str, Any], csrf: str, back: str) -> str:
    iid, state = str(rec["item_id"]), str(rec.get("review_state"))
    hidden = (f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
              f'<input type="hidden" name="item" value="{esc(iid)}">'
              f'<input type="hidden" name="seen" value="{esc(state)}">'
              f'<input type="hidden" name="back" value="{esc(back)}">'
              '<input type="hidden" name="reviewer" value=""><input type="hidden" name="next" value="">')
    if state != states.DRAFT:
        return '<p class="decided">Decided; reopen it (adt review reopen) to review again.</p>'
    choices = "\n".join(str(c) for c in (rec.get("choices") or []))
    return "".join([
        '<div class="actions">',
        f'<form method="post" action="/decide" data-testid="approve-form">{hidden}'
        '<input type="hidden" name="action" value="approve"><button data-testid="approve">Approve (a)</button></form>',
        f'<form method="post" action="/decide" data-testid="reject-form">{hidden}'
        '<input type="hidden" name="action" value="reject">'
        '<input name="reason" data-testid="reject-reason" required maxlength="2000" placeholder="why reject?">'
        '<button data-testid="reject">Reject (r)</button></form>',
        '<details class="edit" data-testid="edit"><summary>Edit (e)</summary>',
        f'<form method="post" action="/decide" data-testid="edit-form">{hidden}'
        '<input type="hidden" name="action" value="edit">',
        f'<label>Question <textarea name="question" data-testid="edit-question" rows="4">{esc(rec.get("question"))}'
        "</textarea></label>",
        (f'<label>Choices, one a line <textarea name="choices" data-testid="edit-choices" rows="5">{esc(choices)}'
         "</textarea></label>" if rec.get("choices") else ""),
        f'<label>Key <input name="answer" data-testid="edit-answer" value="{esc(rec.get("answer") or "")}"></label>',
        '<label>Why <input name="reason" data-testid="edit-reason" maxlength="2000"></label>',
        '<button data-testid="save-edit">Save as a new version</button></form></details>',
        "</div>"])


# ------------------------------------------------------------------------------------------------
# HTTP
class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            resp = _text(413, f"a decision is at most {MAX_BODY} bytes")
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length > 0 else b""
            try:
                resp = self.server.app.handle(method, self.path, dict(self.headers.items()), body)
            except AdtError as exc:   # the bank busy or unreadable: say so, keep serving
                resp = _text(503, str(exc))
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(resp.body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.quiet:
            return
        super().log_message(format, *args)


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, opener: Opener, host: str, port: int, token: str | None, quiet: bool = False):
        check_bind(host, token)   # before the socket is bound
        super().__init__((host.strip("[]"), port), _Handler)
        self.quiet = quiet
        self.app = ReviewApp(opener, host=host, port=int(self.server_address[1]), token=token)

    @property
    def url(self) -> str:
        host = f"[{self.app.host.strip('[]')}]" if ":" in self.app.host else self.app.host
        return f"http://{host}:{self.app.port}/" + (f"?token={urllib.parse.quote(self.app.token)}"
                                                    if self.app.token else "")


def make_server(opener: Opener, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                quiet: bool = False) -> ReviewServer:
    return ReviewServer(opener, host, port, token, quiet)


# ------------------------------------------------------------------------------------------------
# the judged answers (the human queue)
def case_dom_id(case: str) -> str:
    """An element id for a case (its text holds ':' and '/', and is untrusted): a hash of it."""
    import hashlib

    return "case-" + hashlib.sha256(case.encode("utf-8")).hexdigest()[:16]


def render_judged_page(cases: Sequence[Any], total: int, budget: float, csrf: str,
                       notice: tuple[bool, str] | None = None) -> str:
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>adt review: judged answers</title>",
        '<link rel="stylesheet" href="/static/review.css"><script src="/static/review.js" defer></script>',
        "</head><body>",
        '<header><h1>adt review: judged answers</h1><nav><a href="/" data-testid="items-link">items</a></nav>',
        '<label>Reviewer <input id="reviewer" data-testid="reviewer" autocomplete="name" maxlength="200" '
        'placeholder="your name"></label>',
        '<form method="get" action="/judged" class="filters">'
        f'<label>Budget <input name="budget" data-testid="budget" value="{esc(budget)}" size="5"></label>'
        "<button>Show</button></form>",
        '<p class="keys">j / k: next / previous · the share of judged answers routed to humans: half the least '
        "confident (the rater model's) or where the judges disagree most, the rest nearest 0.5</p></header>",
    ]
    if notice is not None:
        done, message = notice
        parts.append(f'<p class="notice {"done" if done else "refused"}" data-testid="notice" role="status">'
                     f"{esc(message)}</p>")
    more = f" (first {len(cases)})" if len(cases) < total else ""
    parts.append(f'<p data-testid="count">{total} judged answers wait for a human{more}</p><main>')
    back = urllib.parse.urlencode({"budget": budget})
    for c in cases:
        parts.append(_case_html(c, csrf, back))
    parts.append("</main>")
    data = {"items": [{"id": case_dom_id(c.case)} for c in cases], "state": "judged"}
    parts.append(f'<script type="application/json" id="queue-data">{script_json(data)}</script>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _case_html(c: Any, csrf: str, back: str) -> str:
    dom = case_dom_id(c.case)
    spread = "-" if c.spread != c.spread else f"{c.spread:.2f}"
    out = [f'<article class="item" id="item-{dom}" data-testid="case" data-item-id="{dom}" '
           f'data-case="{esc(c.case)}" tabindex="-1">',
           f'<h2><code data-testid="case-id">{esc(c.case)}</code> <span class="type">{esc(c.item_type)} · '
           f'{esc(c.language)} · {esc(c.model)}</span> <span class="flag" data-testid="why">{esc(c.why)}</span></h2>',
           f'<div class="question" data-testid="question" dir="auto">{text_html(c.question)}</div>',
           '<div class="pair"><div><h3>the candidate\'s answer</h3>'
           f'<div dir="auto" data-testid="answer">{text_html(c.answer)}</div></div>']
    if c.baseline is not None:
        out.append(f'<div><h3>the baseline answer</h3><div dir="auto" data-testid="baseline">{text_html(c.baseline)}'
                   "</div></div>")
    elif c.reference is not None:
        out.append(f'<div><h3>the reference answer</h3><div dir="auto" data-testid="reference">'
                   f"{text_html(c.reference)}</div></div>")
    out.append("</div>")
    rows = "".join(
        f'<tr data-testid="verdict"><td>{esc(j["judge"])}</td><td>{esc(j["order"] or "-")}</td>'
        f'<td>{esc("-" if j["level"] is None else j["level"])}</td>'
        f'<td>{esc("-" if j["verdict"] is None else format(j["verdict"], ".2f"))}</td>'
        f'<td>{esc(j["problem"] or "")}</td></tr>' for j in c.judgments)
    out.append(f'<div class="qc"><table data-testid="verdicts"><caption>judges\' verdicts (panel {c.score:.2f}, '
               f"spread {spread})</caption><tr><th>judge</th><th>order</th><th>level</th><th>verdict</th>"
               f"<th>problem</th></tr>{rows}</table></div>")
    levels = "".join(f'<label><input type="radio" name="level" value="{k}" data-testid="level-{k}" required> '
                     f"{esc(label)}</label>" for k, label in enumerate(c.levels))
    out.append('<div class="actions"><form method="post" action="/score" data-testid="score-form" class="score">'
               f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
               f'<input type="hidden" name="case" value="{esc(c.case)}">'
               f'<input type="hidden" name="back" value="{esc(back)}">'
               '<input type="hidden" name="reviewer" value=""><input type="hidden" name="next" value="">'
               f'<fieldset><legend>your score</legend>{levels}</fieldset>'
               '<input name="note" data-testid="note" maxlength="2000" placeholder="why (optional)">'
               '<button data-testid="score">Score</button></form></div>')
    out.append("</article>")
    return "\n".join(out)
