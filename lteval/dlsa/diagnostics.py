"""Diagnostics of a fitted DLSA on an evaluation set: accuracy, the separability
score and its companions, one row per stage (formulas in ``lteval.dlsa.separability``).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from lteval.dlsa.model import DLSA
from lteval.dlsa.separability import (
    many_few_auroc,
    permutation_null,
    separability_score,
    somers_d,
    stouffer,
)
from lteval.dlsa.stages import Stage
from lteval.heads import GROUPS, accuracy_report, shot_groups
from lteval.heads.inputs import check_features, encode_labels
from lteval.seeds import derived_rng


def diagnostics(model: DLSA, X: np.ndarray, y: np.ndarray, n_permutations: int = 1000) -> dict:
    """Overall and per-stage metrics of fitted ``model`` on (X (N, D), y (N,) labels
    of ``model.classes_``).

    Returns ``{"accuracy": {...}, "stages": [row per stage], "separability": S (of
    the flow ensemble's density), "separability_sd" (SD over the flows of each flow's
    own score; NaN with one flow), "separability_flows" (each flow's),
    "separability_z", "separability_p", "separability_signed" (mean signed D_s),
    "balance_gain", "filtered_balance" (mean over stages of the filtered train
    labels' normalised entropy minus the active set's), "cluster_coverage",
    "cluster_eval_purity", "train_routing": [...], "routed_share": (S + 1,),
    "predictions": (N,) labels, "route": (N,) as ``model.route``, "log_density": [(N,)
    the ensemble's log p(x) per stage], "member_log_density": [(R, N) each flow's
    per stage]}``; accuracies in [0, 1]. ``n_permutations`` class-frequency
    permutations (seeded by the model's ``random_state``) give each stage's null for
    Somers' D. NotFittedError before ``model.fit``.
    """
    check_is_fitted(model)
    if not isinstance(n_permutations, int) or n_permutations < 2:
        raise ValueError(f"n_permutations must be an integer >= 2, got {n_permutations!r}")
    X = check_features(model, X)
    y = encode_labels(model, column_or_1d(y), "eval y")  # class indices, as pred below
    check_consistent_length(X, y)
    rng = derived_rng(model.seed_, "permutations")
    t = model.trace(X)
    route, pred = t.route, encode_labels(model, t.predictions)
    groups = shot_groups(model.group_counts_)[y]
    freq = model.class_counts_[y]
    rows, active = [], np.ones(len(y), bool)
    entropy = model.train_imbalance_["norm_entropy"]
    for s, st in enumerate(model.stages_):
        lp, cl = t.log_density[s], t.clusters[s]
        filt, rest = active & (route == s), active & (route != s)
        null = permutation_null(lp[active], y[active], model.class_counts_, n_permutations, rng)
        # (R, N): each flow's clusters kept on train; counts are means over the flows
        covered = active[None] & np.take_along_axis(st.kept, cl, 1)
        majority = np.take_along_axis(st.majority, cl, 1)
        member_d = [somers_d(m[active], freq[active]) for m in t.member_log_density[s]]
        imb = model.remaining_train_imbalance_[s]
        row = {
            "stage": s + 1,
            "threshold": st.threshold,
            **_flow_columns(st),
            "n_active": int(active.sum()),
            "n_filtered": int(filt.sum()),
            "train_routed": model.train_routing_[s],
            "somers_d": somers_d(lp[active], freq[active]),
            "flow_somers_d": member_d,
            "somers_d_null_mean": null["null_mean"],
            "somers_d_null_sd": null["null_sd"],
            "somers_d_z": null["z"],
            "balance_gain": imb["norm_entropy"] - entropy,
            "filtered_train_norm_entropy": model.filtered_train_imbalance_[s]["norm_entropy"],
            "filtered_balance": model.filtered_train_imbalance_[s]["norm_entropy"] - entropy,
            "cluster_coverage": float(covered.mean(0).sum() / max(active.sum(), 1)),
            "cluster_eval_correct": float(((y[None] == majority) & covered).sum(1).mean()),
            "cluster_eval_covered": float(covered.sum(1).mean()),
            "auroc_many_few": many_few_auroc(lp[active], groups[active]),
            "stage_accuracy": float((pred[filt] == y[filt]).mean()) if filt.any() else float("nan"),
            "classifier_epoch": st.classifier.best_epoch,
            "stage_classifier_used": st.accepted,
            "stage_check": st.check,
        }
        for name, m in (("filtered", filt), ("remaining", rest)):
            for g in GROUPS:
                row[f"{name}_{g}_share"] = (
                    float((groups[m] == g).mean()) if m.any() else float("nan")
                )
        row.update({f"remaining_train_{k}": v for k, v in imb.items()})
        rows.append(row)
        active, entropy = rest, imb["norm_entropy"]
    return {
        "accuracy": accuracy_report(y, pred, model.group_counts_),
        "stages": rows,
        **_summary(rows),
        "train_routing": list(model.train_routing_),
        "routed_share": np.bincount(route, minlength=len(model.stages_) + 1) / max(len(y), 1),
        # per-sample arrays, so callers need not score the flows again
        "predictions": t.predictions,
        "route": route,
        "log_density": t.log_density,
        "member_log_density": t.member_log_density,
    }


def _flow_columns(st: Stage) -> dict:
    """How the stage's flows' epochs were chosen (median over flows; each flow's in
    the ``flow_*`` lists), and whether training added kept clusters over the
    untrained flows (epoch 0), on average over flows."""
    g = st.gmf
    return {
        "flows": g.members,
        "flow_epoch": int(np.median(g.epoch)),
        "kept_clusters_initial": float(np.mean(g.kept_clusters_initial)),
        "kept_clusters": float(np.mean(g.kept_clusters)),
        "flow_learned": bool(np.mean(g.kept_clusters) > np.mean(g.kept_clusters_initial)),
        "flow_epochs": list(g.epoch),
        "flow_kept_clusters": list(g.kept_clusters),
        "flows_dropped": len(g.dropped),
    }


def _summary(rows: list[dict]) -> dict[str, float]:
    """The separability score and its companions over the stage rows."""
    z, p = stouffer([r["somers_d_z"] for r in rows])
    gains = [r["balance_gain"] for r in rows if np.isfinite(r["balance_gain"])]
    n_cov = sum(r["cluster_eval_covered"] for r in rows)
    flows = [separability_score(d) for d in zip(*(r["flow_somers_d"] for r in rows), strict=False)]
    flows = [f for f in flows if np.isfinite(f)]
    signed = [r["somers_d"] for r in rows if np.isfinite(r["somers_d"])]
    filtered = [r["filtered_balance"] for r in rows if np.isfinite(r["filtered_balance"])]
    return {
        "separability": separability_score([r["somers_d"] for r in rows]),
        "separability_signed": float(np.mean(signed)) if signed else float("nan"),
        "filtered_balance": float(np.mean(filtered)) if filtered else float("nan"),
        "separability_sd": float(np.std(flows, ddof=1)) if len(flows) > 1 else float("nan"),
        "separability_flows": flows,
        "separability_z": z,
        "separability_p": p,
        "balance_gain": float(np.sum(gains)) if gains else float("nan"),
        "cluster_coverage": float(np.mean([r["cluster_coverage"] for r in rows]))
        if rows
        else float("nan"),
        "cluster_eval_purity": sum(r["cluster_eval_correct"] for r in rows) / n_cov
        if n_cov
        else float("nan"),
    }
