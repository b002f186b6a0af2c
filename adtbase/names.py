"""The one rule for the names a user gives and later types back: forms and models (run ids are built from them).

A name is 1 to 200 characters: letters (any script) and digits, and ``. _ - + : / @``, starting with a letter or
a digit. So ``gpt-4o+tools``, ``meta-llama/Llama-3.1-8B@bf16`` and a form ``round-7+extra`` are names; a space,
a comma, a quote, ``|``, ``=`` or a control character is not (they break the flag grammars, shells and the
lists the CLI prints). The bank checks every model and form name it stores (``itembank``), ``adt sample --name``
before it draws; names stored before the rule keep working wherever a name is looked up.
"""

from __future__ import annotations

import re

from adtbase.errors import InputError

NAME_RULE = "1 to 200 letters, digits and . _ - + : / @, starting with a letter or digit"
MAX_LEN = 200
_NAME = re.compile(r"[^\W_][\w.+:/@-]*")


def check_name(what: str, name: object) -> str:
    """``name`` if it follows the rule, else InputError naming ``what`` (``"--name"``, ``"model"``, ...), the
    first character the rule refuses, and the rule."""
    text = name if isinstance(name, str) else ""
    if text and len(text) <= MAX_LEN and _NAME.fullmatch(text):
        return text
    if not text:
        why = "is empty" if isinstance(name, str) else f"is not text ({type(name).__name__})"
    elif len(text) > MAX_LEN:
        why = f"has {len(text)} characters"
    elif not _NAME.fullmatch(text[0]):
        why = f"starts with {text[0]!r}"
    else:
        bad = next(c for c in text if not _NAME.fullmatch("a" + c))
        why = f"holds {bad!r}"
    shown = repr(name) if len(text) <= 60 else repr(text[:57] + "...")
    raise InputError(f"{what} {shown} {why}: a name is {NAME_RULE}")
