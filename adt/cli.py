"""The ``adt`` command line: ``adt [--bank PATH] GROUP VERB ...``.

Conventions every command follows: ``--json`` prints data as JSON; ``--filter KEY=VALUE[,VALUE...]``
(repeatable; the grammar and its one parser: ``adt.flags``) selects a slice; ``--out PATH`` for files
written; exit 0 on success, 1 for a user error (one line naming the problem), 2 for usage errors (click's own).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adt.flags import parse_filters as parse_filters  # the commands' one --filter parser
from adtbase import __version__
from adtbase.errors import AdtError
from itembank import DEFAULT_WAIT_S  # the face is light: DuckDB loads with open_bank, pandas with a frame

if TYPE_CHECKING:
    from itembank import Bank

DEFAULT_BANK = "adt.duckdb"

# Every command's module, loaded when the command is looked up (``adt bank stats`` loads adt.commands.bank
# alone, ``adt --help`` none): name -> (module that defines it on ``cli``, the one line ``adt --help`` shows).
# A new command module adds its commands here (tests/adt/test_startup.py checks the lines against the
# commands' own help and that every module's commands are listed).
COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("adt.commands.audit", "Audit trails: where an item or a form came from; exports checked with no bank."),
    "bank": ("adt.commands.bank", "Import, inspect, curate, verify and export the item bank."),
    "calibrate": ("adt.commands.calibrate",
                  "Fit item parameters from the bank's responses and store them as a new calibration."),
    "calibration": ("adt.commands.calibrate", "Stored calibrations: list, show, diff, flags."),
    "cat": ("adt.commands.cat", "Adaptive test of MODEL: ability, SE, 95% interval and the items used."),
    "compare": ("adt.commands.calibrate",
                "Is A better than B? Paired difference in ability and predicted accuracy, 95% interval and p-value."),
    "estimate": ("adt.commands.calibrate",
                 "A model's ability with its 95% interval and "
                 "its predicted accuracy on a slice (default: whole bank)."),
    "form": ("adt.commands.sample", "Forms: list, show, publish, export for the model side."),
    "generate": ("adt.commands.generate",
                 "Generate draft items with a model (topic, document, variant); review them before any form takes them."),
    "judge": ("adt.commands.judge",
              "Judge models: score the answers to judge-scored items (open with a reference/rubric, pairwise), and validate judges against gold/human labels."),
    "lmeval": ("adt.commands.lmeval", "Interop with lm-evaluation-harness (lm_eval 0.4.x)."),
    "plot": ("adt.commands.plot", "Write a plot (PNG or SVG, by the --out suffix)."),
    "qc": ("adt.commands.qc",
           "Check items (drafts by default): format, near duplicates, leaks, and answer keys by solver models."),
    "report": ("adt.commands.report",
               "Leaderboard with intervals and rank uncertainty, forms, diagnostics, honesty block, provenance."),
    "responses": ("adt.commands.bank", "Past results and spooled run results."),
    "review": ("adt.commands.review",
               "Review items: list the queue, show one, approve, reject (with a reason), reopen, edit, or serve the page."),
    "round": ("adt.commands.round",
              "Sample -> publish -> run every model -> recalibrate linked -> estimate -> summary table."),
    "run": ("adt.commands.run", "Score MODEL on FORM with BACKEND; resumable (kill it and re-run the same command)."),
    "sample": ("adt.commands.sample",
               "Draw form NAME from the bank and store it with its spec, seed, snapshot, calibration and hash."),
    "validate": ("adt.commands.validate",
                 "Refit without held-out models, give them short forms (replayed answers), and compare the "
                 "predicted slice accuracy with their actual accuracy; store the result in the bank."),
}


class LazyGroup(click.Group):
    """The top-level group: a command's module is imported when the command is looked up (running it, or
    ``adt CMD --help``), so start-up pays only for what runs; ``adt --help`` lists the commands from
    ``COMMANDS`` without importing any of them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name][0])  # its decorators register it on `cli`
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(name) for name in names), default=0)  # as click.Group's
        rows = []
        for name in names:
            cmd = self.commands.get(name)
            if cmd is None:
                rows.append((name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit)))
            elif not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def load_all(self) -> None:
        """Import every command module (``adt.commands`` does the same)."""
        for module, _ in COMMANDS.values():
            importlib.import_module(module)


class Context:
    def __init__(self, bank: str, wait_s: float):
        self.bank_path = Path(bank)
        self.wait_s = wait_s

    @contextmanager
    def bank(self, purpose: str, create: bool = False) -> Iterator[Bank]:
        # The app's rooms that own tables: importing a face registers its migrations (itembank's own come
        # first), so a bank any command creates or opens gets every room's, in the same order (itembank,
        # calibration). The faces are light; DuckDB loads with open_bank (pandas only where a frame is built).
        import calibration  # noqa: F401
        from itembank import open_bank

        def say(msg: str) -> None:
            click.echo(msg, err=True)

        with open_bank(self.bank_path, create=create, wait_s=self.wait_s, purpose=purpose, on_wait=say) as bank:
            yield bank


pass_ctx = click.make_pass_decorator(Context)


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    from adtbase.jsonable import to_jsonable  # imports neither numpy nor pandas
    from adtbase.table import Table

    pd = sys.modules.get("pandas")  # a DataFrame exists only where pandas is loaded
    if as_json:
        click.echo(json.dumps(to_jsonable(data), ensure_ascii=False, indent=2, default=str))
    elif text is not None:
        click.echo(text)
    elif isinstance(data, Table):  # a light command's rows, laid out as a frame's to_string
        click.echo(data.to_text() if not data.empty else "(nothing)")
    elif pd is not None and isinstance(data, pd.DataFrame):
        click.echo(data.to_string(index=False) if not data.empty else "(nothing)")
    else:
        for key, value in to_jsonable(data).items():
            click.echo(f"{key}: {value}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--bank", envvar="ADT_BANK", default=DEFAULT_BANK, show_default=True,
              help="The bank file (or set ADT_BANK).")
@click.option("--wait", "wait_s", type=float, envvar="ADT_BANK_WAIT", default=DEFAULT_WAIT_S, show_default=True,
              help="Seconds to wait for a bank another process holds.")
@click.version_option(version=__version__, prog_name="adt")
@click.pass_context
def cli(ctx: click.Context, bank: str, wait_s: float) -> None:
    """adt: adaptive dynamic testing for large language models."""
    ctx.obj = Context(bank, wait_s)


@cli.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create a new, empty bank."""
    with ctx.bank("adt init", create=True) as bank:
        click.echo(f"created bank {bank.path} ({bank.snapshot_id()})")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit 1."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="adt", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AdtError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        os._exit(0)

