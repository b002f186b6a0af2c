"""The ``adt`` command line: ``adt [--bank PATH] GROUP VERB ...``.

Conventions every command follows: ``--json`` prints data as JSON; ``--filter KEY=VALUE[,VALUE...]``
(repeatable; the grammar and its one parser: ``adt.flags``) selects a slice; ``--out PATH`` for files
written; exit 0 on success, 1 for a user error (one line naming the problem), 2 for usage errors (click's own).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pandas as pd

# The app's rooms that own tables: importing a face registers its migrations (itembank's own come first),
# so a bank any command creates or opens gets every room's, in the same order (itembank, calibration).
import calibration  # noqa: F401
from adt.flags import parse_filters as parse_filters  # the commands' one --filter parser
from adtbase import __version__
from adtbase.errors import AdtError
from adtbase.jsonable import to_jsonable
from itembank import DEFAULT_WAIT_S, Bank, open_bank

DEFAULT_BANK = "adt.duckdb"


class Context:
    def __init__(self, bank: str, wait_s: float):
        self.bank_path = Path(bank)
        self.wait_s = wait_s

    @contextmanager
    def bank(self, purpose: str, create: bool = False) -> Iterator[Bank]:
        def say(msg: str) -> None:
            click.echo(msg, err=True)

        with open_bank(self.bank_path, create=create, wait_s=self.wait_s, purpose=purpose, on_wait=say) as bank:
            yield bank


pass_ctx = click.make_pass_decorator(Context)


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(to_jsonable(data), ensure_ascii=False, indent=2, default=str))
    elif text is not None:
        click.echo(text)
    elif isinstance(data, pd.DataFrame):
        click.echo(data.to_string(index=False) if not data.empty else "(nothing)")
    else:
        for key, value in to_jsonable(data).items():
            click.echo(f"{key}: {value}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from adt import commands  # noqa: F401 - registers the command groups

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

