"""adt: adaptive dynamic testing for large language models."""

from adtbase import __version__ as __version__  # read once, in the base package
