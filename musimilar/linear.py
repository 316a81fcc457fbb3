"""A multinomial logistic regression on frozen embeddings: the linear probe and the classifier heads.

Full-batch L-BFGS in numpy: a few hundred tracks to a few hundred thousand, no extra dependency.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_TINY = 1e-12  # guards the spread of a constant feature and the curvature estimate


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _inverse_hessian_times(gradient: np.ndarray, history: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """L-BFGS two-loop recursion: the inverse-Hessian estimate from (step, gradient change) pairs times gradient."""
    result = gradient.copy()
    factors = []
    for step, change in reversed(history):
        factor = (step @ result) / (change @ step)
        result -= factor * change
        factors.append(factor)
    if history:
        step, change = history[-1]
        result *= (step @ change) / (change @ change)
    for (step, change), factor in zip(history, reversed(factors)):
        result += step * (factor - (change @ result) / (change @ step))
    return result


def _minimise_lbfgs(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    max_iterations: int,
    memory: int = 10,
    tolerance: float = 1e-6,
) -> np.ndarray:
    """Minimise a smooth convex objective(params) -> (value, gradient) by L-BFGS with backtracking."""
    params, (value, gradient) = start, objective(start)
    history: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(max_iterations):
        if np.abs(gradient).max() < tolerance:
            break
        direction = -_inverse_hessian_times(gradient, history)
        step = 1.0
        while True:
            trial = params + step * direction
            trial_value, trial_gradient = objective(trial)
            if trial_value <= value + 1e-4 * step * (gradient @ direction):  # Armijo's sufficient decrease
                break
            step /= 2
            if step < 1e-10:
                return params
        change = trial_gradient - gradient
        if change @ (trial - params) > _TINY:  # keep the estimate positive definite
            history = (history + [(trial - params, change)])[-memory:]
        params, value, gradient = trial, trial_value, trial_gradient
    return params


def fit_linear_classifier(
    vectors: np.ndarray,
    labels: np.ndarray,
    n_labels: int | None = None,
    l2: float = 1e-3,
    max_iterations: int = 300,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch L-BFGS from zero: (weights [D, C], bias [C]), float32.

    labels are codes 0..C-1 (see encode_labels). Features are z-scored first and l2 weighs the squared weights
    (not the bias) against the mean cross-entropy. The z-scoring is folded into the result, so predict_linear
    takes raw vectors. Deterministic: the same data gives the same head.
    """
    features = np.asarray(vectors, dtype=np.float64)
    codes = np.asarray(labels, dtype=np.int64)
    n_labels = int(codes.max()) + 1 if n_labels is None else n_labels
    mean, spread = features.mean(axis=0), features.std(axis=0)
    spread[spread < _TINY] = 1.0  # a constant feature carries nothing; leave it at zero
    z = (features - mean) / spread  # [N, D]
    dims = z.shape[1]
    targets = np.eye(n_labels)[codes]  # [N, C]

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = params[: dims * n_labels].reshape(dims, n_labels), params[dims * n_labels :]
        log_probs = _log_softmax(z @ weights + bias)
        residual = (np.exp(log_probs) - targets) / len(z)  # d(mean cross-entropy)/d(logits)
        value = -(log_probs * targets).sum() / len(z) + 0.5 * l2 * (weights * weights).sum()
        return value, np.concatenate([(z.T @ residual + l2 * weights).ravel(), residual.sum(axis=0)])

    params = _minimise_lbfgs(objective, np.zeros(dims * n_labels + n_labels), max_iterations)
    weights, bias = params[: dims * n_labels].reshape(dims, n_labels), params[dims * n_labels :]
    raw_weights = weights / spread[:, None]
    return raw_weights.astype(np.float32), (bias - mean @ raw_weights).astype(np.float32)


def predict_linear(weights: np.ndarray, bias: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Label probabilities [N, C] of a head from fit_linear_classifier for raw vectors [N, D]."""
    logits = np.asarray(vectors, dtype=np.float64) @ weights + bias
    return np.exp(_log_softmax(logits)).astype(np.float32)
