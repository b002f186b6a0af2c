"""``adt review list|show|approve|reject|reopen``: the reviewer's decisions from the command line, for scripting.

Thin glue over ``Bank.set_review_state`` (the states and moves are ``adtbase.review``'s): every decision is an
event with the reviewer's name; a decision another reviewer already took is refused with who and when.
``adt bank review ITEM... --state`` is the same move under the bank's commands.
"""

from __future__ import annotations

import getpass
from typing import Any

import click

from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adtbase import qc as qc_vocab
from adtbase import review as states
from adtbase.errors import InputError

_REVIEWER = click.option("--reviewer", default=None, help="Who decides (default: this machine's user name).")


@cli.group()
def review() -> None:
    """Review items: list the queue, show one, approve, reject (with a reason), reopen, edit, or serve the page."""


@review.command("list")
@click.option("--state", type=click.Choice(list(states.STATES)), default=states.DRAFT, show_default=True)
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Slice (repeatable).")
@click.option("--flag", "flags", multiple=True, type=click.Choice(list(qc_vocab.FLAGS)),
              help="Only items `adt qc` flagged so (repeatable: any of them).")
@click.option("--limit", type=int, default=50, show_default=True, help="Rows shown (0: all).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def review_list(ctx: Context, state: str, filters: tuple[str, ...], flags: tuple[str, ...], limit: int,
                as_json: bool) -> None:
    """Items in one review state (default: the drafts waiting), with their last decision and QC flags."""
    flt = {**parse_filters(filters), "review_state": [state]}
    with ctx.bank("adt review list") as b:
        items = b.items(flt, include_retired=state == states.RETIRED, with_tags=False)
        if flags:
            items = items[items["item_id"].isin(b.flagged(flags, list(items["item_id"])))]
        total = len(items)
        if limit > 0:
            items = items.head(limit)
        shown = list(items["item_id"])
        last = b.review_decisions(shown)
        qc = b.qc_flags(shown)
    rows = [{"item_id": r.item_id, "item_type": r.item_type, "origin": r.origin, "source": r.source,
             "question": _short(str(r.question)), **_last(last.get(r.item_id)),
             "flags": qc_vocab.current_flags(qc.get(r.item_id, {}))}
            for r in items.itertuples()]
    if as_json:
        emit({"state": state, "total": total, "items": rows}, True)
        return
    lines = [f"{total} items {state}" + (f" (first {len(rows)})" if len(rows) < total else "")]
    lines += [f"  {r['item_id']}  {r['item_type']:<7} {r['source'] or '-':<12} {r['question']}"
              + (f"  [{r['last_state']} by {r['last_reviewer'] or '?'} at {r['last_at']}]" if r["last_at"] else "")
              + (f"  flags: {', '.join(r['flags'])}" if r["flags"] else "")
              for r in rows]
    emit(None, False, "\n".join(lines))


@review.command("show")
@click.argument("item")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def review_show(ctx: Context, item: str, as_json: bool) -> None:
    """One item as a reviewer sees it: text, key, tags, provenance, state and its review history."""
    with ctx.bank("adt review show") as b:
        rec = b.item(item)
        hist = b.item_history(item)
    decisions = hist[hist["kind"].isin(list(states.STATES))]
    rec["review_history"] = decisions[["seq", "ts", "kind", "payload"]].to_dict("records")
    emit(rec, as_json)


def decide(ctx: Context, items: tuple[str, ...], state: str, reason: str | None, reviewer: str | None, *,
           purpose: str | None = None) -> None:
    """Move ``items`` to ``state`` in the reviewer's name (default: this machine's user) and say how many moved."""
    with ctx.bank(purpose or f"adt review: {state}") as b:
        n = b.set_review_state(items, state, reason=reason, reviewer=reviewer or getpass.getuser())
    same = len(set(items)) - n
    click.echo(f"{n} items now {state}" + (f" ({same} already were)" if same > 0 else ""))


@review.command("approve")
@click.argument("items", nargs=-1, required=True)
@click.option("--reason", default=None, help="Optional note, kept in the item's history.")
@_REVIEWER
@pass_ctx
def review_approve(ctx: Context, items: tuple[str, ...], reason: str | None, reviewer: str | None) -> None:
    """Approve drafts: forms may draw them from now on."""
    decide(ctx, items, states.APPROVED, reason, reviewer)


@review.command("reject")
@click.argument("items", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why (kept in the item's history).")
@_REVIEWER
@pass_ctx
def review_reject(ctx: Context, items: tuple[str, ...], reason: str, reviewer: str | None) -> None:
    """Reject drafts: they keep their history and never enter a form."""
    decide(ctx, items, states.REJECTED, reason, reviewer)


@review.command("reopen")
@click.argument("items", nargs=-1, required=True)
@click.option("--reason", default=None, help="Why it goes back to review.")
@_REVIEWER
@pass_ctx
def review_reopen(ctx: Context, items: tuple[str, ...], reason: str | None, reviewer: str | None) -> None:
    """Send approved, rejected or retired items back to draft, to be reviewed again."""
    decide(ctx, items, states.DRAFT, reason, reviewer)


@review.command("edit")
@click.argument("item")
@click.option("--question", default=None, help="The new question text.")
@click.option("--choice", "choices", multiple=True, help="The new choices, in order (repeatable; all of them).")
@click.option("--answer", default=None, help="The new key (a letter, 0-based index or option text for MC).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE[,VALUE...]",
              help="Replace the values of a tag key (repeatable).")
@click.option("--reason", default=None, help="Why (kept in both items' history).")
@_REVIEWER
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def review_edit(ctx: Context, item: str, question: str | None, choices: tuple[str, ...], answer: str | None,
                tags: tuple[str, ...], reason: str | None, reviewer: str | None, as_json: bool) -> None:
    """Edit a draft: a new version (new id) whose parent is ITEM; ITEM leaves the queue (rejected, superseded)."""
    if question is None and not choices and answer is None and not tags:
        raise click.UsageError("give at least one of --question, --choice, --answer, --tag")
    who = reviewer or getpass.getuser()
    with ctx.bank("adt review edit") as b:
        new_id = b.edit_item(item, reviewer=who, question=question, choices=list(choices) or None, answer=answer,
                             tags=parse_filters(tags, "--tag") if tags else None, reason=reason)
    emit({"item_id": new_id, "parent_item_id": item, "review_state": states.DRAFT, "reviewer": who}, as_json,
         f"{item} edited by {who}: new draft {new_id} (parent {item}, now rejected as superseded)")


@review.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port (0: any free port).")
@click.option("--token", default=None, envvar="ADT_REVIEW_TOKEN",
              help="Required on every request (…/?token=T once, then a cookie); needed to bind beyond loopback. "
                   "Or ADT_REVIEW_TOKEN (not shown in the process list).")
@pass_ctx
def review_serve(ctx: Context, host: str, port: int, token: str | None) -> None:
    """Serve the review page: the queue with flags, provenance, solver answers and near-duplicates; approve,
    reject or edit from the keyboard. The bank is held only while a request is answered."""
    from adt.review_page import make_server

    try:
        server = make_server(ctx.bank, host, port, token)
    except OSError as exc:   # the port taken, an address not on this machine
        raise InputError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    click.echo(f"reviewing {ctx.bank_path} at {server.url} (Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _short(text: str, width: int = 70) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def _last(decision: dict[str, Any] | None) -> dict[str, Any]:
    d = decision or {}
    return {"last_state": d.get("state"), "last_reviewer": d.get("reviewer"), "last_at": d.get("ts"),
            "last_reason": d.get("reason")}
