"""Classification metrics: WAF (weighted F1, the MER2024 metric), accuracy, per-class F1."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def waf(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """JSON-friendly: waf, accuracy, f1 (per class, classes absent from y_true get 0),
    confusion (rows true, columns predicted)."""
    labels = list(range(n_classes))
    return {
        "waf": waf(y_true, y_pred),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "f1": [float(v) for v in f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)],
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def log_loss(y_true: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood of the true classes (natural log)."""
    if len(y_true) == 0:
        return 0.0
    p = np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0)
    return float(-np.mean(np.log(p)))
