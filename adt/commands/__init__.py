"""Command groups of the adt CLI, one module per family of commands; each registers its commands on
``adt.cli.cli`` when imported.

Nothing is imported here: ``adt.cli.COMMANDS`` names the module of every command and the group loads it
when the command is looked up (running it, or ``adt CMD --help``), so start-up pays only for what runs.
A new command module adds its commands to ``COMMANDS``; ``adt.cli.cli.load_all()`` imports every module.
"""
