"""``adt generate topic|document|variant``: draft items written by a model, with provenance (thin glue over
``adt.workflow.generate``; the backends and their arguments as ``adt run``'s)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adt.flags import parse_backend_args
from adtbase.errors import InputError, TaxonomyError
from runners import available

_TYPES = ("mc", "open", "numeric")


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--backend", default=None,
                     help=f"A text-generating backend ({', '.join(b for b in available() if b in ('hf', 'openai', 'vllm'))}), "
                          "or a Runner class as package.module:Class."),
        click.option("--model", default=None,
                     help="The generator model's name (recorded as backend:model; the backend's model= unless "
                          "--backend-arg model=... says otherwise)."),
        click.option("--backend-arg", "backend_args", multiple=True, metavar="K=V",
                     help="Backend argument (repeatable), as for adt run: openai base_url=..., hf/vllm model=PATH."),
        click.option("--n", "n_items", type=int, default=10, show_default=True, help="Items to ask for."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Root seed: exemplar draws and the sampling seed of call i (seed + i)."),
        click.option("--temperature", type=float, default=0.7, show_default=True),
        click.option("--max-new-tokens", type=int, default=512, show_default=True),
        click.option("--batch-size", type=int, default=8, show_default=True,
                     help="Prompts per backend call; each batch's items are written before the next starts."),
        click.option("--max-calls", type=int, default=None, help="Stop after this many prompts (the budget)."),
        click.option("--max-tokens", type=int, default=None,
                     help="Stop once this many tokens (prompt + output) are used; checked before each batch."),
        click.option("--rate", "rate_per_min", type=float, default=None,
                     help="At most this many prompts per minute (for servers with a rate limit)."),
        click.option("--source", default="generated", show_default=True, help="The source the items are filed under."),
        click.option("--json", "as_json", is_flag=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@cli.group()
def generate() -> None:
    """Generate draft items with a model (topic, document, variant); review them before any form takes them."""


def _run(ctx: Context, method: str, make_jobs: Callable[[Any], list[Any]], kw: Mapping[str, Any],
         origin: str = "model-generated") -> None:
    from adt.workflow import generate as gen
    from adt.workflow.run import backend_kwargs, make_runner, public_config

    for name in ("n_items", "max_new_tokens"):
        if kw[name] < 1:
            raise InputError(f"--{name.replace('_', '-').replace('n-items', 'n')} must be >= 1, got {kw[name]}")
    if not kw["temperature"] >= 0:
        raise InputError(f"--temperature must be >= 0, got {kw['temperature']}")
    for name in ("max_calls", "max_tokens"):
        if kw[name] is not None and kw[name] < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {kw[name]}")
    if not kw["backend"] or not kw["model"]:
        raise InputError(f"generate {method}: give the generator with --backend and --model")
    backend, model = str(kw["backend"]), str(kw["model"])
    args = backend_kwargs(backend, parse_backend_args(kw["backend_args"]), model, None)
    with ctx.bank(f"adt generate {method}: setup") as bank:
        jobs = make_jobs(bank)   # every input checked before the backend starts
    if any(j.parent is not None for j in jobs):   # renumber: the solver programs run in the sandbox
        from adtbase import sandbox

        sandbox.check()
    opts = gen.GenerateOptions(
        method=method, generator=f"{backend}:{model}", seed=kw["seed"], temperature=kw["temperature"],
        max_new_tokens=kw["max_new_tokens"], batch_size=kw["batch_size"], max_calls=kw["max_calls"],
        max_tokens=kw["max_tokens"], rate_per_min=kw["rate_per_min"], source=kw["source"], origin=origin,
        backend_args=public_config(backend, args)["backend_args"], wait_s=ctx.wait_s)
    gen.Pacer(opts.rate_per_min)   # a bad --rate fails before the backend loads
    with make_runner(backend, args) as runner:
        report = gen.generate(ctx.bank_path, jobs, runner, opts)
    _show(report, kw["as_json"])


def _show(report: Any, as_json: bool) -> None:
    method = report.method
    text = (f"generate {method} ({report.generator}, {report.batch}): {report.drafts} drafts, {report.rejected} "
            f"rejected (malformed output, kept with the reason), {report.duplicates} duplicates of items the bank had; "
            f"{report.calls} calls, {report.tokens_in} tokens in, {report.tokens_out} out, {report.seconds:.1f} s"
            + (f"\nstopped after {report.calls} of {report.jobs} prompts: {report.stopped}" if report.stopped else "")
            + (f"\nthe backend failed after {report.calls} of {report.jobs} prompts (everything before kept): "
               f"{report.failed}" if report.failed else "")
            + ("\nreview them: adt review list --state draft" if report.drafts else ""))
    emit(report.as_dict(), as_json, None if as_json else text)
    if report.failed:
        raise SystemExit(1)


def _check_tags(bank: Any, tags: Mapping[str, str], flag: str) -> None:
    tax = bank.taxonomy()
    for key, value in tags.items():
        tax.check(key, value, flag)


@generate.command("topic")
@click.argument("spec", nargs=-1)
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="The slice, in the one --filter grammar (the SPEC arguments are the same: scenario=industry ...).")
@click.option("--language", default=None, help="en or zh (default: the slice's language, else en).")
@click.option("--type", "item_type", type=click.Choice(_TYPES), default="mc", show_default=True)
@click.option("--shots", type=int, default=3, show_default=True, help="Approved exemplars per prompt.")
@_common
@pass_ctx
def generate_topic(ctx: Context, spec: tuple[str, ...], filters: tuple[str, ...], language: str | None,
                   item_type: str, shots: int, **kw: Any) -> None:
    """New items for a tag slice (SPEC: KEY=VALUE ..., e.g. scenario=industry domain=finance language=zh),
    with few-shot exemplars drawn from the slice's approved items."""
    import numpy as np

    from adt.workflow import generate as gen

    flt = parse_filters([*spec, *filters])
    if not flt:
        raise InputError("generate topic: give the slice as KEY=VALUE arguments or --filter (e.g. domain=finance)")
    if shots < 0:
        raise InputError(f"--shots must be >= 0, got {shots}")
    lang = language or (flt["language"][0] if len(flt.get("language", [])) == 1 else "en")

    def jobs(bank: Any) -> list[Any]:
        _check_tags(bank, gen.slice_tags(flt), "generate topic SPEC")
        try:
            approved = bank.items({**flt, "review_state": ["approved"]}, include_retired=False)
        except TaxonomyError:   # a slice the bank has no item of yet (its tags passed the taxonomy): zero-shot
            approved = None
        exemplars = ([] if approved is None else
                     [_item_dict(r) for r in approved.to_dict("records") if r["item_type"] == item_type])
        return gen.topic_jobs(flt, exemplars, n=kw["n_items"], language=lang, item_type=item_type, shots=shots,
                              rng=np.random.default_rng(kw["seed"]))

    _run(ctx, "topic", jobs, kw)


@generate.command("document")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--language", default="en", show_default=True, help="en or zh: the prompt's language.")
@click.option("--type", "item_type", type=click.Choice(_TYPES), default="mc", show_default=True)
@click.option("--chunk-chars", type=int, default=2000, show_default=True, help="Characters per passage.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag every item gets (repeatable).")
@_common
@pass_ctx
def generate_document(ctx: Context, path: str, language: str, item_type: str, chunk_chars: int,
                      tags: tuple[str, ...], **kw: Any) -> None:
    """Items grounded in a document (.txt, .md; .pdf where pypdf is installed), each with its source span."""
    from adt.workflow import generate as gen

    text, digest = gen.read_document(path)   # an unreadable document stops here: nothing generated, nothing written
    tag_map = {k: v[0] for k, v in parse_filters(tags).items()}

    def jobs(bank: Any) -> list[Any]:
        _check_tags(bank, tag_map, "--tag")
        return gen.document_jobs(text, path=str(path), sha256=digest, n=kw["n_items"], language=language,
                                 item_type=item_type, chunk_chars=chunk_chars, tags=tag_map)

    _run(ctx, "document", jobs, kw)


@generate.command("variant")
@click.option("--item", "items", multiple=True, metavar="ITEM", help="A parent item (id or SOURCE:ID; repeatable).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Parents: the approved items of a slice.")
@click.option("--kind", type=click.Choice(["paraphrase", "distractors", "translate", "renumber", "shuffle"]),
              default="paraphrase", show_default=True,
              help="paraphrase, distractors, translate: the model writes the item; renumber: the model writes a "
                   "solver program and the sandbox computes the new key; shuffle: the options reordered, no model.")
@click.option("--language", default=None, help="translate: the target language (default: the other of en/zh).")
@_common
@pass_ctx
def generate_variant(ctx: Context, items: tuple[str, ...], filters: tuple[str, ...], kind: str,
                     language: str | None, **kw: Any) -> None:
    """New items from existing ones (paraphrase, distractor rewriting, zh <-> en translation), each keeping the
    link to its parent."""
    from adt.workflow import generate as gen

    if not items and not filters:
        raise InputError("generate variant: name the parents with --item ITEM or --filter KEY=VALUE")

    def parents_of(bank: Any) -> list[dict[str, Any]]:
        parents: list[dict[str, Any]] = []
        if items:
            parents += [_item_dict(bank.item(ref)) for ref in items]
        if filters:
            frame = bank.items({**parse_filters(filters), "review_state": ["approved"]})
            parents += [_item_dict(bank.item(i)) for i in list(frame["item_id"])[: kw["n_items"]]]
        return parents

    if kind == "shuffle":   # a deterministic transform: no model, no calls
        if kw["n_items"] < 1:
            raise InputError(f"--n must be >= 1, got {kw['n_items']}")
        batch = gen.new_batch_id()
        with ctx.bank("adt generate variant: setup") as bank:
            rows = gen.shuffle_rows(parents_of(bank), n=kw["n_items"], seed=kw["seed"], batch=batch)
        opts = gen.GenerateOptions(method="variant", generator="variant:shuffle", seed=kw["seed"],
                                   source=kw["source"], origin="variant", wait_s=ctx.wait_s)
        report = gen.GenerateReport("variant", opts.generator, batch, opts.source, len(rows))
        gen.write_rows(ctx.bank_path, rows, opts, report)
        _show(report, kw["as_json"])
        return

    def jobs(bank: Any) -> list[Any]:
        return gen.variant_jobs(parents_of(bank), kind=kind, n=kw["n_items"], language=language)

    _run(ctx, "variant", jobs, kw, origin="variant")


def _item_dict(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a prompt shows and a variant inherits, from a bank record or an items-frame row."""
    choices = rec.get("choices")
    raw = rec.get("tags")
    tags: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    return {"item_id": rec["item_id"], "question": rec["question"],
            "choices": None if choices is None else [str(c) for c in choices], "answer": rec.get("answer"),
            "item_type": rec["item_type"], "language": rec["language"],
            "tags": {k: v[0] for k, v in tags.items() if isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 1}}

