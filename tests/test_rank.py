"""Ranking validity (bootstrap, ties, correlations) and the rank command's run-level
behaviour: failure isolation, --config, --backbones-file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import call, folder_args, short_config
from scipy.stats import kendalltau, spearmanr

from lteval.errors import UsageError
from lteval.rank import BackboneScore, validate_ranking
from lteval.rank.bootstrap import kendall_tau_b, spearman_rho
from lteval.rank.scoring import EvalArrays, rank_rows

COUNTS = np.array([150, 150, 60, 60, 10, 10])


def _score(name: str, correct_share: float, seed: int, y: np.ndarray, lp_signal: float = 0.0):
    """A fake scored backbone: each eval sample right with probability ``correct_share``."""
    rng = np.random.default_rng(seed)
    right = rng.random(len(y)) < correct_share
    wrong = (y + 1) % len(COUNTS)
    pred = np.where(right, y, wrong)
    lp = lp_signal * np.log(COUNTS[y]) + rng.normal(size=len(y))
    arrays = EvalArrays(
        y, COUNTS, COUNTS, {"dlsa": pred, "probe": pred}, [lp], [np.ones(len(y), bool)]
    )
    return BackboneScore({"backbone": name, "status": "ok"}, arrays=arrays)


def _eval_labels(per_class: int = 50) -> np.ndarray:
    return np.repeat(np.arange(len(COUNTS)), per_class)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    y = _eval_labels()
    scores = [_score("a", 0.9, 0, y, 1.0), _score("b", 0.5, 1, y), _score("c", 0.7, 2, y, 0.3)]
    v1 = validate_ranking(scores, "dlsa_balanced", n_boot=200, seed=3)
    v2 = validate_ranking(scores, "dlsa_balanced", n_boot=200, seed=3)
    v3 = validate_ranking(scores, "dlsa_balanced", n_boot=200, seed=4)
    assert v1 == v2 and v1["intervals"] != v3["intervals"]
    for s in scores:
        acc = float((s.arrays.preds["dlsa"] == y).mean())
        lo, hi = v1["intervals"][s.row["backbone"]]["dlsa_balanced"]
        assert lo < acc < hi and hi - lo < 0.2
        lo, hi = v1["intervals"][s.row["backbone"]]["separability"]
        assert 0 <= lo <= hi <= 1


def test_ties_only_where_the_intervals_cannot_separate():
    y = _eval_labels()
    good, twin = _score("good", 0.9, 0, y), _score("twin", 0.9, 0, y)  # same predictions
    close = _score("close", 0.89, 5, y)  # within noise of "good"
    bad = _score("bad", 0.4, 1, y)
    v = validate_ranking([good, twin, close, bad], "dlsa_balanced", n_boot=300, seed=0)
    tie = {frozenset((p["a"], p["b"])): p["tie"] for p in v["pairs"]}
    assert tie[frozenset(("good", "twin"))] and tie[frozenset(("good", "close"))]
    assert not tie[frozenset(("good", "bad"))] and not tie[frozenset(("close", "bad"))]
    assert len(v["pairs"]) == 6


def test_rank_correlations_follow_the_planted_relation():
    y = _eval_labels(80)
    # separability (log p(x) tracks frequency) rises with accuracy across backbones
    scores = [_score(f"b{i}", 0.3 + 0.15 * i, i, y, lp_signal=0.5 * i) for i in range(5)]
    v = validate_ranking(scores, "separability", n_boot=100, seed=0)
    corr = {c["metric"]: c for c in v["correlations"]}
    c = corr["dlsa_balanced"]
    assert c["kendall_tau"] == pytest.approx(1.0) and c["spearman_rho"] == pytest.approx(1.0)
    assert c["kendall_lo"] <= c["kendall_tau"] <= c["kendall_hi"] and c["kendall_lo"] > 0
    assert "lift_balanced" not in corr


def test_vectorised_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x, z = rng.integers(0, 4, (20, 7)).astype(float), rng.normal(size=(20, 7))
    tau, rho = kendall_tau_b(x, z), spearman_rho(x, z)
    for i in range(20):
        assert tau[i] == pytest.approx(kendalltau(x[i], z[i]).statistic)
        assert rho[i] == pytest.approx(spearmanr(x[i], z[i]).statistic)


def test_failed_rows_rank_last_without_a_rank():
    rows = [
        {"backbone": "x", "status": "failed", "error": "boom"},
        {"backbone": "y", "status": "ok", "separability": 0.1},
        {"backbone": "z", "status": "ok", "separability": 0.3},
    ]
    ranked = rank_rows(rows, "separability")
    assert [(r["backbone"], r["rank"]) for r in ranked] == [("z", 1), ("y", 2), ("x", None)]


@pytest.mark.slow
def test_a_failing_backbone_does_not_stop_the_run(image_folder, tmp_path, capsys):
    corrupt = tmp_path / "broken.pt"
    corrupt.write_bytes(b"not a checkpoint")
    listing = tmp_path / "backbones.txt"
    listing.write_text(f"# one corrupt\ntimm:test_resnet  # works\nfile:{corrupt}#resnet18\n")
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "backbones-file": str(listing),
                "seed": 5,
                "heads": ["ncm", "knn"],
                "bootstrap": 50,
                "dlsa": {"flow_epochs": 2, "num_stages": 1},  # plumbing: a short DLSA
            }
        )
    )
    out = tmp_path / "out"
    args = folder_args(image_folder, "timm:test_vit")
    code, _, err = call(capsys, *args, "--config", str(config), "--seed", "0", "--out", str(out))
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    status = {b["backbone"]: b["status"] for b in res["backbones"]}
    assert status == {
        "timm:test_vit": "ok",
        "timm:test_resnet": "ok",
        f"file:{corrupt}#resnet18": "failed",
    }
    bad = next(b for b in res["backbones"] if b["status"] == "failed")
    assert bad["rank"] is None and bad["error"] and bad["phase"] == "extracting"
    assert bad["error_kind"] == "user" and "traceback" not in bad  # a corrupt file
    ok = [b for b in res["backbones"] if b["status"] == "ok"]
    assert {"ncm_balanced", "knn_balanced", "separability_lo", "tied_with"} <= set(ok[0])
    assert "ce_balanced" not in ok[0] and res["validity"]["n_boot"] == 50
    assert all(b["num_params"] > 0 and b["cache_key"] and b["extract_seconds"] >= 0 for b in ok)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["seed"] == 0 and saved["heads"] == "ncm,knn"  # the flag beat the file
    assert saved["backbones_file"] == str(listing)
    html = (out / "index.html").read_text()
    assert 'id="failures"' in html and "broken.pt" in html


def test_config_errors_name_the_bad_key(tmp_path, capsys):
    from lteval.cli.rank import main

    bad = tmp_path / "run.yaml"
    bad.write_text("backbonez: [timm:resnet18]\n")
    assert main(["--config", str(bad)]) == 2
    assert "unknown option 'backbonez'" in capsys.readouterr().err
    bad.write_text("dataset: nope\n")
    assert main(["--config", str(bad)]) == 2
    assert "dataset = 'nope'" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "none.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("quiet", [[], ["--quiet"]])
def test_every_backbone_failing_exits_nonzero_and_writes_nothing(tmp_path, capsys, quiet):
    from lteval.cli.rank import main

    out = tmp_path / "out"
    code = main(["--backbones", "timm:test_resnet,timm:test_vit", "--out", str(out), *quiet])
    err = capsys.readouterr().err  # --quiet hides progress, never errors
    assert code == 2 and "every backbone failed" in err and err.count("not found locally") >= 2
    assert not out.exists()


def test_an_exception_without_a_message_is_recorded_not_fatal(
    image_folder, tmp_path, monkeypatch, capsys
):
    from lteval.cli.rank import main
    from lteval.rank import images as pipeline

    real = pipeline.backbone_features

    def flaky(name, *a, **kw):
        if name == "timm:test_vit":
            raise KeyError()  # str(KeyError()) == ""
        return real(name, *a, **kw)

    monkeypatch.setattr(pipeline, "backbone_features", flaky)
    out = tmp_path / "out"
    args = folder_args(image_folder, "timm:test_resnet,timm:test_vit")
    args += ["--heads", "none", "--bootstrap", "0", "--quiet", "--out", str(out)]
    args += ["--config", str(short_config(tmp_path))]
    assert main(args) == 0
    assert "timm:test_vit: FAILED while extracting: KeyError" in capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    status = {b["backbone"]: b["status"] for b in res["backbones"]}
    assert status == {"timm:test_resnet": "ok", "timm:test_vit": "failed"}
    vit = next(b for b in res["backbones"] if b["status"] == "failed")
    assert vit["error_kind"] == "bug" and "KeyError" in vit["traceback"]


def test_first_line_of_an_error():
    from lteval.errors import first_line

    assert first_line(KeyError()) == "KeyError"
    assert first_line(ValueError("\n  \nsecond")) == "second"
    assert first_line(RuntimeError("a\nb")) == "a"


def _run_dir(path, shares, seed):
    from lteval.rank import write_results

    y = _eval_labels()
    scores = [_score(f"b{i}", s, seed + i, y) for i, s in enumerate(shares)]
    for s in scores:
        s.row.update(
            {k: float((s.arrays.preds[k.split("_")[0]] == y).mean()) for k in ("dlsa_balanced",)}
        )
        s.row["separability"] = 0.1
    v = validate_ranking(scores, "dlsa_balanced", n_boot=100, seed=0)
    write_results(path, {"seed": seed, "dataset": {"name": "t"}}, scores, "dlsa_balanced", v)
    return path


def test_compare_two_runs(tmp_path, capsys):
    from lteval.cli.compare import main

    a = _run_dir(tmp_path / "a", [0.9, 0.6, 0.3], 0)
    b = _run_dir(tmp_path / "b", [0.3, 0.6, 0.9], 10)  # the order reversed
    assert main([str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    text = capsys.readouterr().out
    assert "Kendall tau between the two runs' dlsa_balanced over 3 shared backbones: -1.000" in text
    assert "separate" in text and "seed" in text
    csv = (tmp_path / "cmp" / "compare.csv").read_text().splitlines()
    assert len(csv) == 4 and (tmp_path / "cmp" / "compare.html").is_file()
    assert main([str(a), str(tmp_path / "nope")]) == 2
    assert "the output folder of a rank run" in capsys.readouterr().err
    assert main([str(a), str(b), "--by", "speed"]) == 2


def test_score_features_takes_dlsa_settings_and_head_choice():
    from sklearn.datasets import make_blobs

    from lteval.rank import score_features

    X, y = make_blobs(500, n_features=8, centers=4, random_state=0)
    keep = np.concatenate([np.flatnonzero(y == c)[:n] for c, n in enumerate([120, 60, 30, 15])])
    rest = np.setdiff1d(np.arange(500), keep)
    splits = {
        "train": (X[keep], y[keep]),
        "val": (X[rest[:40]], y[rest[:40]]),
        "eval": (X[rest[40:]], y[rest[40:]]),
    }
    s = score_features(
        "b",
        splits,
        num_classes=4,
        heads=["ncm"],
        dlsa_overrides={"num_stages": 1, "flow_epochs": 2},
    )
    assert s.row["dlsa_settings"]["num_stages"] == 1 and s.row["stages_run"] <= 1
    assert "ncm_balanced" in s.row and "knn_balanced" not in s.row
    p = score_features(
        "b",
        splits,
        num_classes=4,
        heads=[],
        dlsa_overrides={"preset": "places-lt", "flow_epochs": 2},
    )
    assert (
        p.row["dlsa_settings"]["lambda_bal"] == 2.0 and p.row["dlsa_settings"]["flow_epochs"] == 2
    )
    with pytest.raises(UsageError, match="unknown head"):
        score_features("b", splits, num_classes=4, heads=["svm"])


def test_ranking_by_a_column_that_is_nan_everywhere_is_marked_undefined(
    image_folder, tmp_path, capsys
):
    from lteval.cli.rank import main

    out = tmp_path / "out"
    args = folder_args(image_folder, "timm:test_resnet")  # classes of 30/20/14: no many-shot
    args += ["--heads", "none", "--bootstrap", "0", "--quiet", "--by", "dlsa_many"]
    assert main([*args, "--config", str(short_config(tmp_path)), "--out", str(out)]) == 0
    assert "the ranking is undefined" in capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["ranking_defined"] is False
    assert 'id="ranking-undefined"' in (out / "index.html").read_text()


def test_benchmarks_index_renders_sections_targets_and_escapes(tmp_path):
    (tmp_path / "dlsa.json").write_text(
        json.dumps(
            {
                "benchmark": "dlsa",
                "wall_seconds": 117.0,
                "targets": {"wall_seconds": 100},
                "rows": [{"backbone": "<b>x</b>", "epoch_s": 0.99}],
                "machine": {"cores": 2},
            }
        )
    )
    r = subprocess.run(
        [sys.executable, "benchmarks/collect.py", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "index.html").read_text()
    assert '<section id="dlsa">' in page and "<code>dlsa.json</code>" in page
    assert '<td class="missed">MISSED</td>' in page  # 117 s against a 100 s target
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert '"cores": 2' in page.replace("&#34;", '"')


def test_failed_records_declare_their_kind():
    from lteval.errors import DatasetError
    from lteval.rank.scoring import failed

    assert failed("a", DatasetError("bad"), "scoring").row["error_kind"] == "user"
    assert failed("a", KeyError("k"), "scoring").row["error_kind"] == "bug"
    assert failed("a", "not found", "weights", kind="weights").row["error_kind"] == "weights"
    with pytest.raises(ValueError, match="give kind="):
        failed("a", "a message", "weights")
    with pytest.raises(ValueError, match="is not one of"):
        failed("a", KeyError(), "x", kind="oops")


def test_scale_benchmark_shapes_follow_the_published_profiles():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for name, (C, prof, _, _, _) in bench.SHAPES.items():
        counts = bench.profile(prof, C)
        assert len(counts) == C and (np.diff(counts) <= 0).all(), name
        if prof[0] == "total":  # n_max .. n_min, summing to the published train size
            assert counts[0] == prof[1] and counts[-1] == prof[2], name
            assert abs(counts.sum() - prof[3]) <= 0.001 * prof[3], (name, counts.sum())
    splits, C = bench.features("tiny-d64")
    assert C == 10 and splits["train"][0].shape[1] == 64 and len(splits["val"][1]) > 0
    est = bench.extrapolate(
        {
            "shape": "m", "n_train": 1000, "n_val": 200, "n_eval": 500, "dim": 64,
            "classes": 10, "flow_epoch_seconds": 1.0, "flow_seconds": 10.0,
            "dlsa_other_seconds": 2.0, "head_seconds": {"ce": 1.0, "knn": 1.0},
            "logme_seconds": 1.0, "bootstrap_seconds": 1.0, "report_seconds": 1.0,
        },
        "imagenet-lt-d512",
    )  # fmt: skip
    # an epoch is at most EPOCH_ROWS rows: its cost grows with min(N, 16384) x D
    from lteval.dlsa import DLSAConfig
    from lteval.heads import LinearConfig

    assert bench.EPOCH_ROWS == DLSAConfig().flow_epoch_samples == LinearConfig().epoch_samples
    assert est["extrapolated"] and est["flow_epoch_seconds"] == round(16384 * 512 / 64000, 2)


def test_moves_benchmark_flags_a_value_outside_the_earlier_interval_and_a_flip():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_moves.py"
    spec = importlib.util.spec_from_file_location("bench_moves", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def run(sep_a, sep_b, tie):
        rows = [
            {
                "backbone": "a",
                "rank": 1,
                "separability": sep_a,
                "separability_lo": 0.3,
                "separability_hi": 0.5,
            },
            {
                "backbone": "b",
                "rank": 2,
                "separability": sep_b,
                "separability_lo": 0.2,
                "separability_hi": 0.4,
            },
        ]
        pairs = [{"a": "a", "b": "b", "metric": "separability", "tie": tie}]
        return {
            "run": {"ranked_by": "separability"},
            "backbones": rows,
            "validity": {"pairs": pairs},
        }

    before = run(0.4, 0.3, tie=False)
    after = run(0.25, 0.35, tie=False)  # a falls below its interval; b moves inside
    after["backbones"][0]["rank"], after["backbones"][1]["rank"] = 2, 1
    s = bench.summarise(bench.demo_moves(before, after))
    assert s["compared"] == 2 and s["outside"] == 1
    assert s["outside_rows"][0]["what"] == "a separability"
    assert abs(s["largest_move"] - 0.15) < 1e-12
    assert bench.demo_order(before, after)["flips_outside_a_tie"] == [["a", "b"]]
    assert bench.demo_order(run(0.4, 0.3, tie=True), after)["flips_outside_a_tie"] == []
    nan = bench.summarise([bench._row("x", 0.1, float("nan"), 0.0, 0.2)])
    assert nan["compared"] == 0 and nan["missing"] == 1


def test_what_to_pick_names_the_best_tail_backbone_its_ties_and_the_rankings_verdict():
    from lteval.rank.pick import SHOWN, what_to_pick

    rows = [  # ranked by separability: a first, but c has the best tail accuracy
        {"backbone": "a", "separability": 0.5, "pick_few": 0.60, "pick_head": "probe"},
        {"backbone": "b", "separability": 0.4, "pick_few": 0.70, "pick_head": "la"},
        {"backbone": "c", "separability": 0.3, "pick_few": 0.72, "pick_head": "dlsa"},
        {"backbone": "d", "status": "failed", "error": "x"},
    ]

    def pair(a, b, tie):
        return {"a": a, "b": b, "metric": "pick_few", "tie": tie}

    validity = {
        "pick_pairs": [pair("a", "b", False), pair("a", "c", False), pair("b", "c", True)],
        "correlations": [
            {"metric": "pick_few", "kendall_tau": -1.0, "kendall_lo": -1.0, "kendall_hi": -0.3}
        ],
    }
    got = what_to_pick(rows, validity, "separability")
    assert got["best"]["backbone"] == "c" and got["best"]["pick_head"] == "dlsa"
    assert [t["backbone"] for t in got["tied"]] == ["b"]
    assert got["first"]["backbone"] == "a" and got["first_agrees"] is False
    assert got["kendall_tau"] == -1.0 and got["n_backbones"] == 3
    validity["pick_pairs"][1]["tie"] = True  # a ties with c: the ranking agrees at the top
    assert what_to_pick(rows, validity, "separability")["first_agrees"] is True
    assert what_to_pick(rows, {}, "separability")["tied"] is None  # no bootstrap: unknown
    many = [{"backbone": f"m{i}", "separability": -i, "pick_few": 0.5} for i in range(12)]
    ties = [pair("m0", f"m{i}", True) for i in range(1, 12)]
    big = what_to_pick(many, {"pick_pairs": ties}, "separability")
    assert len(big["tied"]) == SHOWN and big["tied_more"] == 11 - SHOWN
    none = what_to_pick([{"backbone": "a", "separability": 0.1}], {}, "separability")
    assert none == {"defined": False, "reason": none["reason"]} and "validation" in none["reason"]
