"""A damaged or foreign run folder is one line and exit 2, never a traceback (issue
22): `lteval report` and `lteval compare` on truncated, emptied or hand-edited
results.json files, and two runs on different datasets."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from conftest import short_config, with_classes, write_h5_dir

from lteval import atomic
from lteval.cli.compare import main as compare_main
from lteval.cli.rank import main as rank_main
from lteval.cli.report import main as report_main
from lteval.report import render


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A run folder as `lteval rank` writes it, once per module (two backbones, two
    heads, a short DLSA)."""
    root = tmp_path_factory.mktemp("real")
    config = short_config(root)
    out = root / "R"
    args = ["--features", str(write_h5_dir(root / "feats")), "--heads", "ncm,ce"]
    assert (
        rank_main(
            [*args, "--bootstrap", "40", "--config", str(config), "--quiet", "--out", str(out)]
        )
        == 0
    )
    return out


@pytest.fixture
def run_dir(real_run, tmp_path) -> Path:
    """A fresh copy of the run's results files, with a manifest as lteval writes."""
    out = tmp_path / "R"
    out.mkdir()
    for name in ("results.json", "config.yaml"):
        shutil.copy(real_run / name, out / name)
    atomic.write_manifest(out)
    return out


def _set(res: dict, path: str, value) -> dict:
    res = copy.deepcopy(res)
    *keys, last = path.split(".")
    node = res
    for k in keys:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is KeyError:
        node.pop(last)
    else:
        node[last] = value
    return res


def _all(rows: list[dict], value) -> list[dict]:
    return [{k: (v if k == "backbone" else value) for k, v in r.items()} for r in rows]


def _mutations(res: dict) -> dict[str, str]:
    """Damaged results.json texts, by what was done."""
    out = {
        "truncated": json.dumps(res)[:5000],
        "empty file": "",
        "binary": "\udcff",
        "only run": json.dumps({"run": {}}),
        "a list": "[]",
    }
    for key in ("run", "backbones", "stages", "per_class", "validity"):
        out[f"no {key}"] = json.dumps(_set(res, key, KeyError))
        out[f"{key} a string"] = json.dumps(_set(res, key, "x"))
    for key in ("ranked_by", "dataset", "heads", "warnings", "versions"):
        out[f"run.{key} a number"] = json.dumps(_set(res, f"run.{key}", 7))
    out["backbone 0 without rank"] = json.dumps(_set(res, "backbones.0.rank", KeyError))
    for what, value in (("None", None), ("text", "x"), ("a list", [1])):
        for key in ("backbones", "stages", "per_class"):
            out[f"every {key} value {what}"] = json.dumps({**res, key: _all(res[key], value)})
    out["pairs as text"] = json.dumps(_set(res, "validity.pairs", "x"))
    out["correlations without keys"] = json.dumps(_set(res, "validity.correlations", [{}]))
    return out


CHEAP_TO_RENDER = (
    "truncated",
    "only run",
    "no stages",
    "run.ranked_by a number",
    "run.warnings a number",
    "every backbones value text",
    "every backbones value a list",
    "every stages value text",
    "every per_class value None",
    "pairs as text",
)
"""The mutations `lteval report` is tried on (each renders five plots); `compare` is
tried on all."""


def _one_line_or_ok(code: int, err: str) -> None:
    assert code in (0, 2), err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "results.json" in lines[0], err
        assert "Traceback" not in err


def test_compare_on_every_damaged_results_file_is_one_line(run_dir, tmp_path, capsys):
    res = json.loads((run_dir / "results.json").read_text())
    good = tmp_path / "good"
    shutil.copytree(run_dir, good)
    for what, text in _mutations(res).items():
        (run_dir / "results.json").write_text(text, errors="surrogateescape")
        code = compare_main([str(good), str(run_dir)])
        _one_line_or_ok(code, capsys.readouterr().err)
        if what in ("truncated", "only run", "no backbones"):
            assert code == 2, what


def test_report_on_damaged_results_files_is_one_line(run_dir, capsys):
    texts = _mutations(json.loads((run_dir / "results.json").read_text()))
    for what in CHEAP_TO_RENDER:
        (run_dir / "results.json").write_text(texts[what])
        code = report_main([str(run_dir)])
        _one_line_or_ok(code, capsys.readouterr().err)
        if what in ("truncated", "only run", "run.ranked_by a number"):
            assert code == 2, what
    (run_dir / "results.json").write_text(texts["truncated"])
    assert report_main([str(run_dir)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_a_report_error_on_an_unedited_results_file_stays_a_bug(run_dir, monkeypatch):
    """Only a file changed since lteval wrote it turns errors into a user message."""
    monkeypatch.setattr(render, "dlsa_status", lambda *a: {}["missing"])
    with pytest.raises(KeyError):
        report_main([str(run_dir)])


def test_report_records_what_it_rewrote_in_the_manifest(run_dir):
    assert report_main([str(run_dir)]) == 0
    assert atomic.foreign(run_dir) == []  # index.html and the PNGs are lteval's now
    (run_dir / "notes.txt").write_text("mine")
    assert report_main([str(run_dir)]) == 0 and (run_dir / "notes.txt").is_file()
    assert atomic.foreign(run_dir) == ["notes.txt"]


def test_compare_of_runs_on_other_datasets_warns_that_metrics_are_not_comparable(
    run_dir, tmp_path, capsys
):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    res = json.loads((other / "results.json").read_text())
    res["run"]["dataset"]["name"] = "folder:mine"
    (other / "results.json").write_text(json.dumps(res))
    assert compare_main([str(run_dir), str(other)]) == 0  # the same split: a renamed copy
    assert "WARNING" not in capsys.readouterr().out
    res["run"]["dataset"]["split_hash"] = "1" * 16
    (other / "results.json").write_text(json.dumps(res))
    assert compare_main([str(run_dir), str(other)]) == 0
    captured = capsys.readouterr()
    assert "WARNING: the runs are on different datasets" in captured.out
    assert "warning: the runs are on different datasets" in captured.err
    res["run"]["dataset"]["name"] = json.loads((run_dir / "results.json").read_text())["run"][
        "dataset"
    ]["name"]
    res["run"]["dataset"]["split_hash"] = "0" * 16
    (other / "results.json").write_text(json.dumps(res))
    assert compare_main([str(run_dir), str(other)]) == 0
    captured = capsys.readouterr()
    assert (
        "different splits" in captured.out and "another --seed, --imbalance-factor" in captured.out
    )
    assert not any(c in captured.out + captured.err for c in "\x1d\x1e\x1f")  # no raw markers
    assert compare_main([str(run_dir), str(run_dir)]) == 0
    assert "WARNING" not in capsys.readouterr().out


def test_a_report_at_a_thousand_classes_is_small_and_leads_with_a_narrow_summary(run_dir):
    """Every class stays in per_class.csv; the page bins them and stays under 2 MB."""
    import re

    res = with_classes(run_dir, 1000)
    assert report_main([str(run_dir)]) == 0
    html = (run_dir / "index.html").read_text()
    assert len(html.encode()) < 2 * 2**20
    summary = re.search(r'<table id="summary">.*?</thead>', html, re.S).group(0)
    heads = re.findall(r"<th[^>]*>([^<]+)</th>", summary)
    assert heads[:3] == ["rank", "backbone", res["run"]["ranked_by"]]
    assert {"dlsa_balanced", "dlsa_few"} <= set(heads) and len(heads) <= 7
    assert "20 frequency bins" in html
