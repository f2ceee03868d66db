"""Issue 11: the validation study's statistics and program."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, weightedtau

from lteval.errors import UsageError
from lteval.study.ceiling import with_fractions
from lteval.study.stats import correlations, ground_truth, taus, verdicts


def panel(seed: int = 0, n: int = 12, noise: float = 0.3) -> list[dict]:
    """Two datasets; 'good' tracks few-shot accuracy, 'bad' is its mirror, 'flat' is constant."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in ("a", "b"):
        acc = rng.uniform(0.3, 0.9, n)
        for i in range(n):
            rows.append(
                {
                    "dataset": d,
                    "truth_few": acc[i],
                    "truth_balanced": acc[i] + 0.05,
                    "good": acc[i] + rng.normal() * noise * 0.1,
                    "bad": -acc[i],
                    "flat": 1.0,
                    "logme": rng.normal(),
                    "feature_dim": rng.integers(10, 100),
                }
            )
    return rows


def test_taus_are_scipys_hyperbolic_weighted_tau_and_tau_b():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=15), rng.normal(size=15)
    w, k = taus(s, t)
    assert w == pytest.approx(weightedtau(s, t).statistic)
    assert k == pytest.approx(kendalltau(s, t).statistic)
    assert all(np.isnan(taus(np.ones(15), t)))  # a constant score has no ranking
    s[0] = np.nan  # NaN ranks below every finite value
    s2 = s.copy()
    s2[0] = np.nanmin(s) - 5
    assert taus(s, t) == taus(s2, t)


def test_correlations_pool_per_dataset_values_and_are_seeded():
    rows = panel()
    c = correlations(rows, ["good", "bad", "flat"], ["truth_few"], n_boot=200, seed=1)
    get = {(x["dataset"], x["score"]): x for x in c}
    assert get[("pooled", "good")]["weighted_tau"] > 0.8
    assert get[("pooled", "bad")]["weighted_tau"] == pytest.approx(-1)
    assert np.isnan(get[("pooled", "flat")]["weighted_tau"])
    for s in ("good", "bad"):
        per = [get[(d, s)]["weighted_tau"] for d in ("a", "b")]
        assert get[("pooled", s)]["weighted_tau"] == pytest.approx(np.mean(per))
        x = get[("pooled", s)]
        assert x["weighted_lo"] <= x["weighted_tau"] <= x["weighted_hi"]
    assert get[("a", "good")]["n"] == 12 and get[("pooled", "good")]["n"] == 24
    again = correlations(rows, ["good", "bad", "flat"], ["truth_few"], n_boot=200, seed=1)
    assert json.dumps(again) == json.dumps(c)


def test_verdicts_compare_with_logme_and_the_naive_baselines():
    rows = panel(noise=0.1)
    c = correlations(rows, ["good", "bad", "logme", "feature_dim"], ["truth_few"], n_boot=200)
    v = verdicts(c, "truth_few")
    assert (
        v["good"].startswith("weighted tau")
        and "predicts accuracy; meets the 0.6 goal" in v["good"]
    )
    assert "above LogME" in v["good"] and "above the best naive baseline" in v["good"]
    assert "ranks feature sets backwards" in v["bad"] and "below LogME" in v["bad"]
    assert "LogME (" not in v["logme"]


def test_ground_truth_is_chosen_on_validation_never_on_eval():
    row = {
        "member": "m",
        "dlsa_val_balanced": 0.7,
        "probe_val_balanced": 0.8,
        "ncm_val_balanced": np.nan,
        "dlsa_few": 0.9,
        "probe_few": 0.5,
        "dlsa_balanced": 0.95,
        "probe_balanced": 0.6,
        "ncm_few": 1.0,
        "ncm_balanced": 1.0,
    }
    g = ground_truth(row, ["dlsa", "probe", "ncm"])
    assert g == {"truth_method": "probe", "truth_few": 0.5, "truth_balanced": 0.6}
    row["dlsa_val_balanced"] = 0.8  # a tie goes to the earlier method
    assert ground_truth(row, ["dlsa", "probe", "ncm"])["truth_method"] == "dlsa"
    with pytest.raises(ValueError, match="validation"):
        ground_truth({"member": "m"}, ["dlsa"])


def test_validate_program_writes_the_study_atomically(tmp_path, capsys, monkeypatch, two_threads):
    from lteval.cli.validate import main
    from lteval.report import study
    from lteval.report.render import study_quote
    from lteval.report.study import load_summary

    monkeypatch.setattr(study, "SUMMARY", tmp_path / "published.json")

    config = tmp_path / "fast.yaml"  # a short flow: this checks the program, not DLSA
    config.write_text("dlsa: {flow_epochs: 2, num_stages: 1, classifier: {epochs: 5}}\n")
    out = tmp_path / "study"
    args = ["--datasets", "mnist5k-lt", "--members", "cnn:1,cnn:2,cnn:3", "--heads", "ncm"]
    args += ["--more-panels", "none"]
    args += ["--bootstrap", "40", "--config", str(config), "--quiet", "--out", str(out)]
    assert main([*args, "--publish"]) == 0
    first = (out / "validate.json").read_bytes()
    assert main([*args, "--publish"]) == 0  # same seed: byte-identical (timings apart)
    assert (out / "validate.json").read_bytes() == first
    timings = json.loads((out / "timings.json").read_text())
    assert timings["wall_seconds"] > 0 and len(timings["feature_sets"]) == 3
    res = json.loads(first)
    assert [r["member"] for r in res["feature_sets"]] == ["cnn:1", "cnn:2", "cnn:3"]
    assert res["command"] == "python -m lteval.validate " + " ".join([*args, "--publish"])
    for r in res["feature_sets"]:
        assert r["truth_method"] in ("dlsa", "probe", "ncm") and r["feature_dim"] == 256
        assert r[f"{r['truth_method']}_few"] == r["truth_few"]
    pooled = [c for c in res["correlations"] if c["dataset"] == "pooled"]
    assert {c["score"] for c in pooled} >= {"separability", "logme", "feature_dim"}
    html = (out / "index.html").read_text()
    assert "cnn:3" in html and res["verdicts"]["truth_few"]["separability"] in html
    names = sorted(p.name for p in tmp_path.iterdir())
    # no leftovers; the CNNs' features went to the feature cache (3 entries)
    assert names == ["fast.yaml", "lteval-cache", "published.json", "study"]
    assert len(list((tmp_path / "lteval-cache").glob("*/manifest.json"))) == 3
    # every rank report quotes the published study, and says when LogME did better
    quote = study_quote("separability", load_summary())
    sep = [c for c in pooled if c["score"] == "separability" and c["truth"] == "truth_few"][0]
    lm = [c for c in pooled if c["score"] == "logme" and c["truth"] == "truth_few"][0]
    assert quote["by"]["weighted_tau"] == sep["weighted_tau"] and quote["feature_sets"] == 3
    assert quote["below_logme"] == (not sep["weighted_tau"] > lm["weighted_tau"])
    assert study_quote("probe_balanced", load_summary())["by"] is None
    naive = [c for c in pooled if c["score"] in ("feature_dim", "num_params")]
    naive = [c["weighted_tau"] for c in naive if c["truth"] == "truth_few"]
    naive = [v for v in naive if np.isfinite(v)]  # the CNNs share dimension and size
    assert quote["goal"] == 0.6
    assert (quote["naive"] is None) if not naive else (quote["naive"][0] == max(naive))
    # bad input: one line, exit 2, nothing written
    code = main(["--datasets", "nope", "--out", str(tmp_path / "x")])
    assert code == 2 and "--datasets" in capsys.readouterr().err
    assert main(["--members", "cnn:0,cnn:1,cnn:2", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_rank_reports_quote_the_shipped_study(tmp_path, monkeypatch):
    from lteval.report import study
    from lteval.report.render import study_quote
    from lteval.report.study import load_summary

    def entry(w):
        return {"truth_few": {"weighted_tau": w, "weighted_lo": w - 0.2, "weighted_hi": w + 0.2}}

    summary = {
        "datasets": ["a", "b"],
        "feature_sets": 32,
        "pooled": {
            "separability": entry(0.24),
            "logme": entry(0.31),
            "feature_dim": entry(0.01),
            "num_params": entry(0.51),
        },
    }
    monkeypatch.setattr(study, "SUMMARY", tmp_path / "s.json")
    assert study_quote("separability", load_summary()) is None  # nothing shipped: nothing quoted
    study.write_json_atomic(study.SUMMARY, summary)
    q = study_quote("separability", load_summary())
    assert (
        q["below_logme"] and q["naive"] == (0.51, "num_params") and q["by"]["weighted_tau"] == 0.24
    )
    assert q["panels"] == []  # a study of one panel: nothing more to quote
    summary["pooled"]["separability"] = entry(0.7)
    later = {"datasets": ["a"], "members": 18, "pooled": {}, "answer": "Separability's ..."}
    summary["panels"] = {"default": {**later, "answer": "quoted above"}, "lt-methods": later}
    study.write_json_atomic(study.SUMMARY, summary)
    q = study_quote("separability", load_summary())
    assert not q["below_logme"]
    assert q["panels"] == [{"name": "lt-methods", **later}]  # the later panels' answers


def test_validate_exits_non_zero_when_a_later_panel_ended_short(tmp_path, monkeypatch, capsys):
    """The finished panels are written beside --out (which keeps the previous study),
    nothing is published, and the exit says so."""
    from markupsafe import escape

    from lteval.cli import validate
    from lteval.report import study
    from lteval.study.runner import StudyResult

    monkeypatch.setattr(study, "SUMMARY", tmp_path / "published.json")
    first = {"name": "default", "members": [], "datasets": {}, "correlations": [], "verdicts": {}}
    first["answer"] = "..."
    error = "panel lt-methods: fewer than 3 feature sets scored on ['a'] (16 failed; see the log)"
    later = {**first, "name": "lt-methods", "error": error, "error_kind": "user"}
    later["answer"] = f"Not answered: {error}."
    record = {"panels": [first, later], "feature_sets": [], "failed": [], "datasets": {}}
    record.update(command="c", seed=0, panel=[], n_boot=0, scores=[], verdicts={})
    record["correlations"] = []
    monkeypatch.setattr(validate, "run_study", lambda *a, **k: StudyResult(record))
    out, beside = tmp_path / "study", tmp_path / "study.incomplete"
    study.write_study(out, {**record, "panels": [first]})  # a previous, complete study
    before = (out / "validate.json").read_bytes()
    assert validate.main(["--out", str(out), "--publish"]) == 2
    err = capsys.readouterr().err
    assert "study incomplete (lt-methods without correlations)" in err
    assert f"{beside}" in err and "nothing published" in err
    assert (out / "validate.json").read_bytes() == before  # a failed run changes no study
    assert json.loads((beside / "validate.json").read_text())["panels"][1]["error"] == error
    html = (beside / "index.html").read_text()
    assert f'<p class="warning">{escape(later["answer"])}</p>' in html  # as Jinja wrote it
    assert 'id="panel-lt-methods-pooled"' not in html  # no empty table for it
    assert not study.SUMMARY.exists()
    later["error_kind"] = "bug"  # a bug in a later panel: exit 1, as for a ranking
    assert validate.main(["--out", str(out)]) == 1


def test_run_study_is_the_library_call_behind_the_program(tmp_path):
    """The study reuses the pipeline's guards (parameter names, the DLSA settings
    check) and its failure rows; a failing member does not end it."""
    from lteval.study import run_study
    from lteval.study.panels import CONTROL, DEMO_FILE, demo_backbones, study_panel

    with pytest.raises(ValueError, match=r"datasets=\['nope'\]: choose from") as e:
        run_study(datasets=["nope"])
    assert "--" not in str(e.value)
    with pytest.raises(ValueError, match="num_clusters"):  # checked as strictly as by rank
        run_study(["cnn:1", "cnn:2", "cnn:3"], ["mnist5k-lt"], dlsa={"num_clusters": "many"})
    with pytest.raises(ValueError, match="panel must name at least 3"):
        run_study(["cnn:1", "cnn:1", "cnn:2"], ["mnist5k-lt"])
    with pytest.raises(ValueError, match="bootstrap must be >= 0"):
        run_study(["cnn:1", "cnn:2", "cnn:3"], ["mnist5k-lt"], bootstrap=-5)
    with pytest.raises(ValueError, match="bootstrap=5 is too few"):  # as the program says
        run_study(["cnn:1", "cnn:2", "cnn:3"], ["mnist5k-lt"], bootstrap=5)
    with pytest.raises(ValueError, match="datasets takes a list of names"):
        run_study(datasets="mnist5k-lt")
    fast = {"flow_epochs": 2, "num_stages": 1, "classifier": {"epochs": 5}}
    short = ["cnn:1", "timm:no_such_model_at_all", "timm:nor_this_one"]
    with pytest.raises(UsageError, match="fewer than 3 .* no study written"):  # first panel
        run_study(short, ["mnist5k-lt"], heads=["ncm"], bootstrap=40, dlsa=fast, progress=False)
    panel = ["cnn:1", "timm:no_such_model_at_all", "cnn:2", "cnn:3"]
    study = run_study(panel, ["mnist5k-lt"], heads=["ncm"], bootstrap=40, dlsa=fast, progress=False)
    (bad,) = study.failed
    assert bad["member"] == "timm:no_such_model_at_all" and bad["status"] == "failed"
    assert bad["error_kind"] == "user" and bad["phase"] == "extracting" and "traceback" not in bad
    assert [r["member"] for r in study.record["feature_sets"]] == ["cnn:1", "cnn:2", "cnn:3"]
    assert study.record["panel"] == panel and len(study.timings["feature_sets"]) == 3
    # one definition of the demo panel: the Makefile reads the file the study builds on
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert f"--backbones-file {DEMO_FILE.relative_to(DEMO_FILE.parents[2])}" in makefile
    assert demo_backbones()[-1] == CONTROL and len(study_panel()) == 16
    members = {m.split("@")[0] for m in study_panel() if not m.startswith("cnn:")}
    assert members == set(demo_backbones())


def test_more_panels_get_their_own_correlations_and_answer(monkeypatch):
    """A second panel is scored on its own datasets and correlated on its own rows;
    validate.json's 'panels' and the published summary carry each one."""
    from lteval.report import study as study_page
    from lteval.study import panels as panel_module
    from lteval.study import run_study
    from lteval.study import runner as validation
    from lteval.study.panels import Panel

    tiny = Panel("tiny", ("lt:ce:1", "lt:ldam-drw:1", "lt:supcon:1"), {"mnist5k-lt": {}})
    failing = ("timm:no_such_model_at_all", "timm:nor_this_one")
    broken = Panel("broken", ("lt:ce:1", *failing), {"mnist5k-lt": {}})
    choices = {"default": None, "tiny": tiny, "broken": broken}
    monkeypatch.setattr(validation, "panels", lambda: choices)
    monkeypatch.setattr(panel_module, "LT_EPOCHS", 1)
    with pytest.raises(ValueError, match=r"more_panels=\['tiny', 'tiny'\] names a panel twice"):
        run_study(["cnn:1", "cnn:2", "cnn:3"], ["mnist5k-lt"], more_panels=["tiny", "tiny"])
    with pytest.raises(
        ValueError, match=r"more_panels=\['nope'\]: choose from \['tiny', 'broken'\]"
    ):
        run_study(["cnn:1", "cnn:2", "cnn:3"], ["mnist5k-lt"], more_panels=["nope"])
    fast = {"flow_epochs": 2, "num_stages": 1, "classifier": {"epochs": 5}}
    result = run_study(
        ["cnn:1", "cnn:2", "cnn:3"],
        ["mnist5k-lt"],
        more_panels=["tiny", "broken"],
        heads=["ncm"],
        bootstrap=40,
        dlsa=fast,
        progress=False,
    )
    got = result.record
    assert [p["name"] for p in got["panels"]] == ["custom", "tiny", "broken"]
    # a later panel that ends short is recorded with its error; the others are kept
    (short,) = result.incomplete
    assert short["name"] == "broken" and short["error_kind"] == "user"
    assert "fewer than 3 feature sets scored" in short["error"] and not short["correlations"]
    assert short["answer"].startswith("Not answered: panel broken")
    assert [f["member"] for f in result.failed] == list(broken.members[1:])
    rows = got["feature_sets"]
    assert [r["panel"] for r in rows] == ["custom"] * 3 + ["tiny"] * 3 + ["broken"]
    assert {r["method"] for r in rows[3:6]} == {"ce", "ldam-drw", "supcon"}
    assert got["correlations"] == got["panels"][0]["correlations"]  # the first panel's
    tiny = got["panels"][1]
    tiny_corr = tiny["correlations"]
    own = with_fractions(correlations(rows[3:6], n_boot=40, seed=0), tiny["replicate"])
    np.testing.assert_equal(own, tiny_corr)  # its own rows, with its own noise ceiling
    # the replicate run: the truth's ceiling and every score's retest, per dataset and pooled
    assert {(r["dataset"], r["truth"]) for r in tiny["replicate"]} == {
        (d, t) for d in ("mnist5k-lt", "pooled") for t in ("truth_few", "truth_balanced")
    }
    retest = {r["score"] for r in tiny["retest"]}
    assert {"separability", "logme", "lda_tail_posterior"} <= retest
    for r in rows[3:6]:
        assert {"truth_few_a", "truth_few_b", "retest_separability"} <= set(r)
        assert r["retest_logme"] == r["logme"]  # closed form: a refit cannot move it
    assert "size_controlled" not in tiny  # one architecture, one size: nothing to control
    assert got["panels"][1]["answer"].startswith("Separability's pooled weighted tau")
    assert {"filtered_balance", "separability_signed"} <= {c["score"] for c in tiny_corr}
    summary = study_page.summary(got)
    assert summary["feature_sets"] == 3 and summary["panels"]["tiny"]["members"] == 3
    assert summary["panels"]["tiny"]["answer"] == got["panels"][1]["answer"]


def test_answer_says_what_a_missing_interval_or_rival_means():
    from lteval.study.stats import answer

    def c(score, w, lo=float("nan"), hi=float("nan")):
        return {
            "dataset": "pooled",
            "score": score,
            "truth": "truth_few",
            "weighted_tau": w,
            "weighted_lo": lo,
            "weighted_hi": hi,
        }

    text = answer([c("separability", 0.4), c("logme", float("nan")), c("ncm_val_balanced", 0.2)])
    assert "no interval" in text and "nan" not in text and "above NCM (0.20)" in text
    assert "LogME" not in text and "beats every other score" in text
    # a printed gap is the difference of the printed values, and never "0.00"
    text = answer([c("separability", 0.4531), c("logme", 0.4976)])
    assert "(0.45)" in text and "trails logme (0.50) by 0.05" in text
    text = answer([c("separability", 0.597), c("logme", 0.3)])
    assert "is 0.003 short of the 0.6 goal" in text
    ranked = answer([c("separability", 0.7, 0.65, 0.8), c("logme", 0.1, 0.0, 0.2)])
    assert "orders the feature sets by their tail accuracy" in ranked and "meets the 0.6" in ranked
