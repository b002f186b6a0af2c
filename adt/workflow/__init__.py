"""Workflow glue: the steps that call several rooms (a run of a form, later the round loop)."""

from adt.workflow.run import DEFAULT_BATCH_SIZE, RunReport, default_run_id, run_form

__all__ = ["DEFAULT_BATCH_SIZE", "RunReport", "default_run_id", "run_form"]
