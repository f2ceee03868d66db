"""The results schema: every column a rank run writes, declared once.

A backbone row (results.json ``backbones``, results.csv) holds identity, the metric
columns ``METRICS`` (each with ``_lo``/``_hi`` 95% bootstrap bounds when
``BOOTSTRAPPED``), facts about the backbone and the run, wall-clock timings (which go
to timings.csv only), and for a failed backbone its ``error_kind`` (``ERROR_KINDS``).
Stage rows (stages.csv) and per-class rows (per_class.csv) have their own columns.
``check_rows`` refuses a column that is not declared here, so that a renamed or
misspelt column is an error, not a silently missing number in the report.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from lteval.heads import CLOSED_FORM, GROUPS

HEAD_NAMES = ("ce", "la", "crt", "taunorm", "lws", "ncm", "knn")
"""Column prefixes of the baseline heads (``lteval.rank.scoring.HEADS`` builds them):
``ce`` cross-entropy probe, ``la`` post-hoc logit adjustment, ``crt`` classifier
re-training, ``taunorm``, ``lws`` learnable weight scaling, ``ncm`` nearest class mean
(cosine), ``knn``."""
METHODS = ("dlsa", "probe", *HEAD_NAMES, "pick")
"""Every method with accuracy columns: DLSA, its Balanced-Softmax probe, the heads,
and ``pick``: whichever of them has the best validation balanced accuracy (the
earlier one on a tie; ``pick_head`` names it), never chosen on eval."""
ACCURACY_KEYS = ("overall", "balanced", *GROUPS)
"""``{method}_{key}``: accuracy (share correct), balanced accuracy (mean per-class
recall), and the mean per-class recall over each shot group's classes; all in [0, 1]."""
METHOD_NAMES = {
    "dlsa": "DLSA",
    "probe": "the Balanced-Softmax probe",
    "ce": "the cross-entropy probe",
    "la": "post-hoc logit adjustment",
    "crt": "cRT",
    "taunorm": "tau-normalisation",
    "lws": "LWS",
    "ncm": "nearest class mean",
    "knn": "k-nearest neighbours",
    "pick": "the head chosen on validation",
}
ACCURACY_MEANING = {
    "overall": "accuracy",
    "balanced": "balanced accuracy",
    **{g: f"mean recall over {g}-shot classes" for g in GROUPS},
}
SEPARATION = (
    "separability_z",
    "balance_gain",
    "cluster_coverage",
    "cluster_eval_purity",
    "filtered_balance",
    "separability_signed",
)
"""The separability score's companions (formulas in docs/method.md)."""

METRICS = [
    "separability",
    *(s for s in SEPARATION if s != "separability_signed"),
    *(f"{m}_{k}" for m in METHODS for k in ACCURACY_KEYS),
    "lift_balanced",
    "logme",
    *CLOSED_FORM,
]
"""The metric columns a row can carry; ``--by`` may name any of them (higher is better
for each). ``separability_p`` and ``separability_signed`` (whose sign says which end of
the label distribution the flows prefer) are row columns too, but not ranking ones."""
BOOTSTRAPPED = [m for m in METRICS if m not in ("logme", *CLOSED_FORM, *SEPARATION)]
"""Metrics given bootstrap intervals over the eval split (and, for separability, over
the flows of its ensemble). LogME, balance_gain and filtered_balance use
the train split only, and so do the closed-form scores (lda_tail_posterior reads the
validation split); separability_z is a test statistic with its own null; the
cluster coverage columns are reported as measured."""

ERROR_KINDS = {
    "user": "an input the user can fix: data, an option, a checkpoint (an LtevalError)",
    "weights": "pretrained weights not found on this machine",
    "bug": "an unexpected exception in lteval or a library (its traceback is kept)",
}
"""``error_kind`` of a failed row. A run whose every backbone failed exits with status
2 when no failure is a "bug", 1 otherwise."""

TIMINGS = ("extract_seconds", "score_seconds", "dlsa_seconds", "head_seconds")
"""Wall-clock columns (seconds): they go to timings.csv (and results.json), never to
results.csv, so that the same seed gives byte-identical results.csv, stages.csv and
per_class.csv."""

ROW = {
    "rank": "1 = best by the ranking column; None for a failed backbone",
    "backbone": "the backbone's name (or the --features sub-folder)",
    "status": "ok or failed",
    "separability": "mean over stages of |Somers' D| of log p(x) vs class frequency, in [0, 1]"
    " (log p(x): the log of the mean density of the stage's flow_seeds flows)",
    "separability_sd": "SD over the flows of each flow's own separability (NaN with one flow);"
    " the ensemble's standard error is about separability_sd / sqrt(flow_seeds)",
    "flow_seeds": "flows trained per stage, each from its own seed (the ensemble's size)",
    "flow_precision": "matmul precision the flows actually trained in (float32 or bfloat16)",
    "separability_p": "two-sided p-value of separability_z (Stouffer over stages)",
    "separability_z": "Stouffer's Z of the stages' Somers' D against their permutation nulls",
    "balance_gain": "normalised label entropy left after the last stage minus the train's",
    "filtered_balance": "mean over stages of the normalised label entropy of the train samples"
    " the stage filters minus that of the samples active at the stage (> 0: each stage"
    " faces a more balanced label space, as DLSA claims)",
    "separability_signed": "mean over stages of the signed Somers' D (> 0: the flow's density"
    " is higher on frequent classes; < 0: on rare ones)",
    "cluster_coverage": "mean over stages of the share of active eval samples in kept clusters",
    "cluster_eval_purity": "share of covered eval samples whose label is their cluster's majority",
    **{
        f"{m}_{k}": f"{ACCURACY_MEANING[k]} of {METHOD_NAMES[m]} on the eval split"
        for m in METHODS
        for k in ACCURACY_KEYS
    },
    "lift_balanced": "dlsa_balanced - probe_balanced: what DLSA's stages add to its probe",
    "logme": "LogME evidence of the train features (training-free transferability)",
    "lda_posterior": "mean shrinkage-LDA posterior of each train sample's class (SFDA's and"
    " NCTI's core), in [0, 1]",
    "lda_tail_posterior": "mean over tail classes of the uniform-prior shrinkage-LDA posterior"
    " of the class on its validation samples, in [0, 1]",
    "gbc": "Gaussian Bhattacharyya Coefficient: minus the summed class-pair overlap in a"
    " 64-d PCA space (<= 0)",
    "h_score": "regularized H-score: tr(shrunk feature covariance^-1 x class-mean covariance)",
    **{f"{m}_val_balanced": "balanced accuracy on the validation split" for m in METHODS},
    "pick_head": "the method with the best validation balanced accuracy (its columns: pick_*)",
    "tied_with": "backbones whose paired bootstrap interval of the difference covers 0",
    "warning": "why the row's separability is undefined (every class the same size)",
    "feature_dim": "D, the feature vector's length",
    "n_train": "train samples (the validation split carved out)",
    "n_val": "validation samples (choices of every head and DLSA's stage check)",
    "n_eval": "eval samples (balanced; every reported accuracy)",
    "stages_run": "DLSA stages fitted",
    "stages_note": "why DLSA stopped before num_stages, if it did",
    "dlsa_settings": "the DLSA settings used (a mapping)",
    "precomputed": "features read from --features h5 files",
    "pretrained": "pretrained weights were loaded (False: random weights)",
    "control": "a random: control, random on purpose",
    "weights": "checkpoint file, 'random-init' or 'precomputed features'",
    "weights_kind": "pretrained, control or RANDOM",
    "weights_sha256": "first 12 hex digits of the checkpoint's sha256",
    "weights_package": "registry package lteval installed the weights from",
    "weights_version": "that package's version",
    "input_size": "side of the square model input (pixels)",
    "num_params": "backbone parameters",
    "cache_key": "feature cache entry",
    "skipped_images": "unreadable images left out (--skip-bad-images)",
    **{t: "wall-clock seconds (timings.csv)" for t in TIMINGS},
    "phase": "failed rows: weights, extracting or scoring",
    "error": "failed rows: the error's first line",
    "error_kind": "failed rows: one of ERROR_KINDS",
    "traceback": "failed rows of kind bug: the traceback",
}
"""Every backbone-row column, with its meaning; ``{metric}_lo``/``_hi`` come on top for
each of ``BOOTSTRAPPED``."""
INTERVALS = {f"{m}_{b}" for m in BOOTSTRAPPED for b in ("lo", "hi")}

STAGE = {
    "backbone": "the backbone",
    "stage": "1-based stage",
    "threshold": "log-density threshold of the stage's filter (top rho of train)",
    "flows": "flows in the stage's ensemble",
    "flow_epoch": "median over the flows of the epoch chosen on the train-side criterion",
    "flow_epochs": "each flow's chosen epoch",
    "kept_clusters_initial": "kept clusters of the untrained flows (mean over flows)",
    "kept_clusters": "kept clusters of the chosen flows (mean over flows)",
    "flow_kept_clusters": "each flow's kept clusters at its chosen epoch",
    "flows_dropped": "flows left out because not one epoch finished with a finite loss",
    "flow_learned": "the chosen flows keep more clusters than the untrained ones (means)",
    "flow_somers_d": "each flow's own Somers' D on the active samples",
    "n_active": "eval samples still unfiltered at this stage",
    "n_filtered": "eval samples this stage filters out",
    "train_routed": "train samples this stage filters out",
    "somers_d": "Somers' D of log-density against class frequency, active samples",
    "somers_d_null_mean": "mean of D under class-frequency permutations",
    "somers_d_null_sd": "its standard deviation",
    "somers_d_z": "(D - null mean) / null sd",
    "balance_gain": "normalised entropy of the remaining train labels minus before",
    "filtered_train_norm_entropy": "normalised entropy of the train labels this stage filters",
    "filtered_balance": "filtered_train_norm_entropy minus the active train labels' entropy",
    "cluster_coverage": "share of active eval samples in kept clusters",
    "cluster_eval_correct": "covered eval samples whose label is their cluster's majority"
    " (mean over flows)",
    "cluster_eval_covered": "active eval samples in kept clusters (mean over flows)",
    "auroc_many_few": "AUROC of log-density separating many- from few-shot samples",
    "stage_accuracy": "accuracy on the samples this stage filters",
    "classifier_epoch": "epoch of the stage classifier chosen on validation",
    "stage_classifier_used": "the stage check accepted the stage classifier",
    "stage_check": "the stage check's verdict, in words",
    **{
        f"{w}_{g}_share": f"share of {g}-shot among {w} eval samples"
        for w in ("filtered", "remaining")
        for g in GROUPS
    },
    "remaining_train_imbalance_ratio": "largest / smallest remaining train class",
    "remaining_train_norm_entropy": "normalised entropy of the remaining train labels",
    "remaining_train_classes": "classes left in the remaining train samples",
}
"""Every stages.csv column."""
PER_CLASS = {
    "backbone": "the backbone",
    "class": "class id (0..C-1)",
    "class_name": "the class's name (or its original id when labels were remapped)",
    "train_count": "train samples of the class (the validation split carved out)",
    "lt_count": "long-tailed train count (train + validation; the shot group)",
    "group": "many, medium or few",
    **{f"{m}_accuracy": "per-class recall of the method" for m in METHODS},
}
"""Every per_class.csv column."""

RUN = {
    "ranking_defined": "False when the ranking column is NaN for every backbone",
    "ranked_by": "the ranking column",
    "command": "the command line that ran",
    "dataset": "the dataset's manifest (name, split hash, counts, notes)",
    "seed": "the seed of every random choice",
    "device": "where the flows trained",
    "device_name": "the CUDA device's name",
    "torch_threads": "torch CPU threads (per process)",
    "world_size": "processes that shared the backbones (torchrun ranks; 1 without torchrun)",
    "versions": "package versions",
    "heads": "the baseline heads run",
    "random_weights": "backbones that ran with RANDOM weights (weights missing)",
    "controls": "random: controls",
    "failed": "backbones that failed",
    "warnings": "what the report's header says about the user's data",
}
"""Every key of results.json ``run``."""

REPORT_COLUMNS = [
    "separability",
    "separability_sd",
    "separability_z",
    "separability_p",
    "balance_gain",
    "cluster_coverage",
    "cluster_eval_purity",
    "logme",
    *CLOSED_FORM,
    *(f"{m}_balanced" for m in ("dlsa", "probe")),
    "lift_balanced",
    *(f"{m}_{g}" for m in ("dlsa", "probe") for g in GROUPS),
    "dlsa_overall",
    "probe_overall",
    *(f"{h}_balanced" for h in HEAD_NAMES),
    "feature_dim",
    "num_params",
    "input_size",
    "extract_seconds",
]
"""The report's main table, in order (columns a run lacks are left out)."""
REPORT_STAGE_COLUMNS = [
    "backbone",
    "stage",
    "flows",
    "flow_epoch",
    "kept_clusters_initial",
    "kept_clusters",
    "flow_learned",
    "n_active",
    "n_filtered",
    "somers_d",
    "flow_somers_d",
    "somers_d_null_mean",
    "somers_d_null_sd",
    "somers_d_z",
    "auroc_many_few",
    *(f"filtered_{g}_share" for g in GROUPS),
    "remaining_train_imbalance_ratio",
    "remaining_train_norm_entropy",
    "balance_gain",
    "cluster_coverage",
    "stage_accuracy",
]
"""The report's stage table, in order."""


def check_rows(rows: Iterable[dict], declared: Collection[str], what: str) -> None:
    """ValueError naming the columns of the first row that ``declared`` lacks."""
    for row in rows:
        extra = [k for k in row if k not in declared]
        if extra:
            raise ValueError(
                f"{what} column(s) {extra} are not declared in lteval.rank.schema; "
                "declare them there (with their meaning) before writing them"
            )


def markdown() -> str:
    """docs/columns.md: every column of the results files with its meaning, from the
    declarations above (``make docs`` writes it)."""

    def table(title: str, intro: str, cols: dict) -> list[str]:
        out = [f"## {title}", "", intro, "", "| column | meaning |", "| --- | --- |"]
        rows = [f"| `{k}` | {v.replace('|', chr(92) + '|')} |" for k, v in cols.items()]
        return out + rows + [""]

    lines = [
        "# The columns of lteval's results files",
        "",
        "Generated from `lteval/rank/schema.py` by `make docs`; a test fails when this",
        "file and the schema differ. How to read them: [report.md](report.md).",
        "",
    ]
    lines += table(
        "results.csv / results.json `backbones`",
        "One row per backbone, best first. Every metric in "
        + ", ".join(f"`{m}`" for m in BOOTSTRAPPED[:3])
        + ", ... that has a bootstrap interval also has `<metric>_lo` and `<metric>_hi` "
        "(95%). Timing columns (" + ", ".join(f"`{t}`" for t in TIMINGS) + ") go to "
        "timings.csv only.",
        ROW,
    )
    lines += table("stages.csv", "One row per backbone and DLSA stage.", STAGE)
    lines += table("per_class.csv", "One row per backbone and class.", PER_CLASS)
    lines += table("results.json `run`", "The run record.", RUN)
    return "\n".join(lines).rstrip() + "\n"
