"""Answer-key checks from solver answers: which option is the right key, weighing solvers by ability.

``adt qc`` puts each item to k solvers (any backend, or recorded answers re-scored against the current key)
and asks of their extracted answers: is the stored key the right one? A plain vote fails both ways: on a
hard item most solvers miss, and on MMLU-Pro the misses pile onto one attractive distractor, so "most
solvers picked B" says little. The model here is a latent-class IRT model (Dawid-Skene with abilities):

- the true key ``k`` of item ``i`` is unknown: prior ``1 - prior_wrong`` on the stored key, the rest spread
  evenly over the other options;
- solver ``s`` (ability ``theta_s``) answers the true key with ``p = 1/K + (1 - 1/K) * sigmoid(slope *
  (theta_s - b_i))`` (a guessing floor of one in K options), ``b_i`` the item's difficulty, integrated
  over a normal prior on a grid;
- a solver that misses picks a wrong option by the item's own distractor pull, integrated out under a
  symmetric Dirichlet(``distractor_concentration``) (a Polya urn): many misses on one distractor are
  cheap to explain as a hard item with an attractive distractor, but not when the solvers that pick it
  are the strong ones and the weak ones are the ones picking the key -- wrong-option choice does not
  depend on ability, correctness does. That ability pattern (the classical "distractor with a positive
  discrimination" of item analysis) is what marks a miskeyed item;
- abilities are fitted by EM on the batch itself (or passed in); a missing answer counts as a miss that
  names no option.

Flags: ``key_suspect`` when the posterior puts at least ``suspect_at`` on options other than the stored
key; ``ambiguous`` when no option holds ``clear_at`` of the posterior and a second one holds at least
``split_at`` (the solvers' answers leave two keys plausible); ``trivial`` when every solver answered and
all answered the key. ``difficulty`` is the posterior mean of ``b`` on the solvers' scale (centred prior):
a first estimate, not a calibration.

Measured on real data (``bench/qc_key_errors.py``): 2,000 MMLU-Pro items with 100 planted key flips and the
20 recorded models as solvers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, gammaln, logsumexp

from adtbase.errors import InputError

DEFAULT_PRIOR_WRONG = 0.15
DEFAULT_CONCENTRATION = 0.5
SUSPECT_AT = 0.5
CLEAR_AT = 0.75
SPLIT_AT = 0.2
_GRID = np.linspace(-4.0, 4.0, 25)
_B_SD = 1.5
_THETA_SD = 2.0     # a weak prior on abilities keeps a small batch's EM finite
_CHUNK = 2000       # items per E-step block (memory: chunk x solvers x grid x options)


@dataclass(frozen=True)
class KeyCheck:
    posterior: NDArray[np.float64]      # (n, max options): P(option k is the right key)
    p_key_wrong: NDArray[np.float64]    # (n,): 1 - posterior of the stored key
    difficulty: NDArray[np.float64]     # (n,): posterior mean b, solvers' scale
    solver_theta: NDArray[np.float64]   # (S,)
    majority: NDArray[np.int64]         # (n,): the option most solvers chose (-1: nobody answered)
    majority_share: NDArray[np.float64]  # (n,): its share of the answering solvers
    agree_share: NDArray[np.float64]    # (n,): share of answering solvers that chose the stored key
    n_answered: NDArray[np.int64]       # (n,)
    key_suspect: NDArray[np.bool_]
    ambiguous: NDArray[np.bool_]
    trivial: NDArray[np.bool_]


def check_keys(answers: NDArray[np.integer], n_options: NDArray[np.integer], keys: NDArray[np.integer], *,
               prior_wrong: float = DEFAULT_PRIOR_WRONG, distractor_concentration: float = DEFAULT_CONCENTRATION,
               slope: float = 1.0, solver_theta: NDArray[np.floating] | None = None, iters: int = 15,
               suspect_at: float = SUSPECT_AT, clear_at: float = CLEAR_AT, split_at: float = SPLIT_AT) -> KeyCheck:
    """``answers`` (n items x S solvers): the option index each solver chose, -1 for no usable answer;
    ``n_options`` (n,): options per item; ``keys`` (n,): the stored key's index. See the module doc."""
    A = np.asarray(answers, dtype=np.int64)
    K = np.asarray(n_options, dtype=np.int64)
    key = np.asarray(keys, dtype=np.int64)
    if A.ndim != 2 or len(K) != len(A) or len(key) != len(A):
        raise InputError(f"check_keys: answers {A.shape}, n_options {K.shape} and keys {key.shape} do not match")
    n, S = A.shape
    if n == 0 or S == 0:
        raise InputError("check_keys needs at least one item and one solver")
    if np.any(K < 2) or np.any((key < 0) | (key >= K)):
        bad = int(np.flatnonzero((K < 2) | (key < 0) | (key >= K))[0])
        raise InputError(f"check_keys: item {bad} has {K[bad]} options and key index {key[bad]}")
    if not 0 < prior_wrong < 1 or distractor_concentration <= 0:
        raise InputError("check_keys: prior_wrong must be in (0, 1) and distractor_concentration > 0")
    A = np.where((A >= 0) & (A < K[:, None]), A, -1)
    km = int(K.max())
    answered = A >= 0
    onehot = (A[:, :, None] == np.arange(km)[None, None, :])
    counts = onehot.sum(1).astype(np.float64)                           # (n, km)
    if solver_theta is None:
        acc = (np.clip(((A == key[:, None]) & answered).sum(0), 0.5, None)
               / np.clip(answered.sum(0), 1, None)).clip(0.02, 0.98)
        theta = np.log(acc / (1 - acc))
        fixed = False
    else:
        theta = np.asarray(solver_theta, dtype=np.float64).copy()
        if theta.shape != (S,):
            raise InputError(f"check_keys: solver_theta has shape {theta.shape}, want ({S},)")
        fixed = True
    log_prior = _key_prior(key, K, km, prior_wrong) + _polya(counts, K, distractor_concentration)
    log_g = -0.5 * (_GRID / _B_SD) ** 2
    log_g -= logsumexp(log_g)
    guess = 1.0 / K
    for step in range(1 if fixed else iters + 1):
        stats = _e_step(onehot, answered, theta, guess, slope, log_prior, log_g)
        if fixed or step == iters:
            break
        theta = _m_step(theta, stats, guess, slope)
    post, b_mean = stats[0], stats[3]
    return _summary(post, b_mean, theta, A, counts, key, answered, suspect_at, clear_at, split_at)


def _key_prior(key: NDArray, K: NDArray, km: int, prior_wrong: float) -> NDArray[np.float64]:
    opts = np.arange(km)[None, :]
    lp = np.where(opts == key[:, None], np.log1p(-prior_wrong), np.log(prior_wrong / (K - 1))[:, None])
    return np.where(opts < K[:, None], lp, -np.inf)


def _polya(counts: NDArray, K: NDArray, beta: float) -> NDArray[np.float64]:
    """log P(the misses' options | key k) under a symmetric Dirichlet(beta) over the K-1 wrong options."""
    per = gammaln(beta + counts) - gammaln(beta)
    n_wrong = counts.sum(1, keepdims=True) - counts                      # misses if k were the key
    kp = (K - 1).astype(np.float64)[:, None]
    return per.sum(1, keepdims=True) - per + gammaln(kp * beta) - gammaln(kp * beta + n_wrong)


def _p_correct(theta: NDArray, guess: NDArray, slope: float) -> NDArray[np.float64]:
    """(n, S, grid) probability of answering the key, for items with guessing floor ``guess``."""
    g = guess[:, None, None]
    return g + (1 - g) * expit(slope * (theta[None, :, None] - _GRID[None, None, :]))


def _e_step(onehot: NDArray, answered: NDArray, theta: NDArray, guess: NDArray, slope: float,
            log_prior: NDArray, log_g: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Posterior over keys, and the expected counts the M-step needs, block by block."""
    n = len(onehot)
    post = np.empty(log_prior.shape)
    b_mean = np.empty(n)
    w_g = np.empty((n, len(_GRID)))
    hit = np.empty((n, onehot.shape[1], len(_GRID)))
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        p = _p_correct(theta, guess[sl], slope)
        lc, lm = np.log(p), np.log1p(-p)
        oh = onehot[sl].astype(np.float64)
        # log L(key k, b) = sum over solvers of log(1-p), plus (log p - log(1-p)) for those who chose k
        ll = lm.sum(1)[:, None, :] + np.einsum("nsk,nsg->nkg", oh, lc - lm)
        ll += log_prior[sl][:, :, None] + log_g[None, None, :]
        z = logsumexp(ll, axis=(1, 2), keepdims=True)
        w = np.exp(ll - z)                                              # (chunk, km, grid)
        post[sl] = w.sum(2)
        w_g[sl] = w.sum(1)
        b_mean[sl] = w_g[sl] @ _GRID
        hit[sl] = np.einsum("nkg,nsk->nsg", w, oh)                      # P(solver chose the key, b)
    return post, w_g, hit, b_mean


def _m_step(theta: NDArray, stats: tuple, guess: NDArray, slope: float) -> NDArray[np.float64]:
    """Newton steps on each solver's expected log-likelihood (a missing answer is a miss)."""
    _, w_g, hit, _ = stats

    def q(th: NDArray) -> NDArray:
        p = _p_correct(th, guess, slope)
        return (hit * np.log(p) + (w_g[:, None, :] - hit) * np.log1p(-p)).sum((0, 2)) - 0.5 * (th / _THETA_SD) ** 2

    h = 0.05
    for _ in range(3):
        q0, qp, qm = q(theta), q(theta + h), q(theta - h)
        grad, hess = (qp - qm) / (2 * h), (qp - 2 * q0 + qm) / h ** 2
        theta = theta - np.clip(grad / np.minimum(hess, -1e-6), -1.0, 1.0)
    return theta


def _summary(post: NDArray, b_mean: NDArray, theta: NDArray, A: NDArray, counts: NDArray, key: NDArray,
             answered: NDArray, suspect_at: float, clear_at: float, split_at: float) -> KeyCheck:
    """``counts`` (n, options): how many solvers chose each option."""
    n = len(A)
    rows = np.arange(n)
    n_ans = answered.sum(1)
    majority = np.where(n_ans > 0, counts.argmax(1), -1)
    share = np.where(n_ans > 0, counts.max(1) / np.maximum(n_ans, 1), 0.0)
    agree = np.where(n_ans > 0, counts[rows, key] / np.maximum(n_ans, 1), 0.0)
    p_wrong = 1.0 - post[rows, key]
    top2 = -np.sort(-post, axis=1)[:, :2]
    return KeyCheck(
        posterior=post, p_key_wrong=p_wrong, difficulty=b_mean, solver_theta=theta, majority=majority,
        majority_share=share, agree_share=agree, n_answered=n_ans,
        key_suspect=p_wrong >= suspect_at,
        ambiguous=(top2[:, 0] < clear_at) & (top2[:, 1] >= split_at),
        trivial=(n_ans == A.shape[1]) & (counts[rows, key] == n_ans) & (n_ans > 0))
