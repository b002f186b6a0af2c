"""Samplers: test forms by random, stratified, evolutionary and exact assembly; adaptive testing."""

from .cat import (
    AdaptiveTest,
    CatConfig,
    CatResult,
    CatSession,
    calibrate_sympson_hetter,
    exposure_rates,
    final_estimate,
    mean_overlap,
    simulate,
)
from .enemies import find_enemy_pairs
from .pool import PreparedPool, eligible, family_roots, prepare, stage_pool
from .pretest import seed_pretest
from .quotas import (
    OTHER,
    CellModel,
    build_cells,
    largest_remainder,
    proportional_quota,
    quota_counts,
    solve_cell_counts,
)
from .spec import FormSpec, OverlapLimit, PretestSpec, Quota
from .strategies import (
    REGISTRY,
    FormDraft,
    Sampler,
    form_objectives,
    get_sampler,
    register_sampler,
    sample_form,
    violations,
)

__all__ = [
    "AdaptiveTest", "CatConfig", "CatResult", "CatSession", "calibrate_sympson_hetter", "exposure_rates",
    "final_estimate", "mean_overlap", "simulate",
    "OTHER", "REGISTRY", "CellModel", "FormDraft", "FormSpec", "OverlapLimit", "PreparedPool", "PretestSpec", "Quota",
    "Sampler", "build_cells", "eligible", "family_roots", "find_enemy_pairs", "form_objectives", "get_sampler",
    "largest_remainder", "prepare", "proportional_quota", "register_sampler",
    "quota_counts", "sample_form", "seed_pretest", "solve_cell_counts", "stage_pool", "violations",
]
