"""End-to-end tests of ``python -m lteval.rank`` / ``lteval.extract`` as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import folder_args

from lteval.features import write_h5

TINY = "timm:test_resnet,timm:test_vit"


def run(*args: str, module: str = "lteval.rank") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=os.environ
    )


def cache_entries() -> list[str]:
    root = Path(os.environ["LTEVAL_CACHE"])
    return (
        sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        if root.exists()
        else []
    )


def run_inprocess(capsys, *args: str) -> tuple[int, str]:
    """Call the program's main() directly (fast, for the bad-input cases)."""
    from lteval.cli.rank import main

    code = main(list(args))
    return code, capsys.readouterr().err


def check_report(out: Path, n: int, num_classes: int) -> dict:
    """The results files and the HTML report exist and agree with each other."""
    res = json.loads((out / "results.json").read_text())
    csv = pd.read_csv(out / "results.csv")
    rows = res["backbones"]
    assert len(rows) == n == len(csv)
    assert csv["backbone"].tolist() == [r["backbone"] for r in rows]
    assert csv["rank"].tolist() == list(range(1, n + 1))
    np.testing.assert_allclose(csv["separability"], [r["separability"] for r in rows])
    seps = [r["separability"] for r in rows]
    assert seps == sorted(seps, reverse=True)
    html = (out / "index.html").read_text()
    table = html.split('id="ranking"')[1].split("</table>")[0]
    body_rows = re.findall(r"<tr><td>(\d+)</td><td class=\"name\">([^<]+)</td>", table)
    assert [name for _, name in body_rows] == [r["backbone"] for r in rows]
    for r in rows:
        assert f"{r['separability']:.3f}" in table
        assert 0 <= r["separability_p"] <= 1 and np.isfinite(r["balance_gain"])
        evidence = "no evidence of head/tail separation" if r["separability_p"] > 0.05 else "p "
        assert evidence in table
    assert ('id="no-evidence"' in html) == any(r["separability_p"] > 0.05 for r in rows)
    for img in re.findall(r'<img src="([^"]+)"', html):
        assert (out / img).stat().st_size > 1000
    stages = pd.read_csv(out / "stages.csv")
    assert set(stages["backbone"]) == {r["backbone"] for r in rows}
    per_class = pd.read_csv(out / "per_class.csv")
    assert len(per_class) == n * num_classes
    return res


@pytest.mark.slow
def test_rank_images_end_to_end_and_cache_reuse(image_folder, tmp_path):
    out = tmp_path / "report"
    args = [
        *folder_args(image_folder, TINY),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    first = run(*args)
    assert first.returncode == 0, first.stderr
    res = check_report(out, 2, num_classes=3)
    assert "RANDOM weights" in first.stderr and "extracting" in first.stderr
    assert 'id="weights-warning"' in (out / "index.html").read_text()
    assert res["run"]["random_weights"] == ["timm:test_resnet", "timm:test_vit"]
    assert all(r["pretrained"] is False and r["weights"] == "random-init" for r in res["backbones"])
    assert res["backbones"][0]["dlsa_settings"]["num_clusters"] >= 6
    assert len(cache_entries()) == 2
    second = run(*args, "--out", str(tmp_path / "again"))
    assert second.returncode == 0 and "extracting train" not in second.stderr
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert [r["separability"] for r in again["backbones"]] == [
        r["separability"] for r in res["backbones"]
    ]  # same seed, same result
    assert run("--out", str(out), module="lteval.report").returncode == 2  # needs RESULTS_DIR
    assert run(str(out), module="lteval.report").returncode == 0


def _h5_dir(root: Path, names=("bb_a", "bb_b"), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    counts = [120, 60, 25, 12, 6]
    centers = rng.normal(size=(5, 12)) * 2
    for k, name in enumerate(names):
        y = np.repeat(np.arange(5), counts)
        yt = np.repeat(np.arange(5), 20)
        write_h5(
            root / name / "feature_train.h5",
            centers[y] + rng.normal(size=(len(y), 12)) * (1 + k),
            y,
        )
        write_h5(
            root / name / "feature_test.h5", centers[yt] + rng.normal(size=(100, 12)) * (1 + k), yt
        )
    return root


@pytest.mark.slow
def test_rank_precomputed_h5_features(tmp_path):
    feats, out = _h5_dir(tmp_path / "feats"), tmp_path / "out"
    r = run("--features", str(feats), "--out", str(out), "--by", "dlsa_balanced")
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert {x["backbone"] for x in res["backbones"]} == {"bb_a", "bb_b"}
    bal = [x["dlsa_balanced"] for x in res["backbones"]]
    assert bal == sorted(bal, reverse=True) and res["run"]["ranked_by"] == "dlsa_balanced"
    assert (
        res["backbones"][0]["n_eval"] == 100 and "precomputed" in (out / "index.html").read_text()
    )
    assert cache_entries() == []


@pytest.mark.slow
def test_extract_exports_h5_that_rank_reads_back(image_folder, tmp_path):
    exp = tmp_path / "h5"
    r = run(
        *folder_args(image_folder, "timm:test_resnet"),
        "--export-h5",
        str(exp),
        module="lteval.extract",
    )
    assert r.returncode == 0, r.stderr
    name, key = r.stdout.strip().split("\t")
    assert name == "timm:test_resnet" and cache_entries() == [key]
    cached = np.load(Path(os.environ["LTEVAL_CACHE"]) / key / "eval_features.npy")
    with h5py.File(exp / "timm_test_resnet" / "feature_test.h5") as f:
        np.testing.assert_allclose(f["features"][:], cached)
    out = tmp_path / "out"
    assert run("--features", str(exp), "--out", str(out)).returncode == 0
    assert (
        json.loads((out / "results.json").read_text())["backbones"][0]["backbone"]
        == "timm_test_resnet"
    )


def test_help_documents_the_options():
    text = run("--help").stdout
    for opt in (
        "--dataset",
        "--data-root",
        "--backbones",
        "--device",
        "--out",
        "--seed",
        "--allow-random-init",
        "--features",
        "--by",
        "--weights",
    ):
        assert opt in text
    assert "--export-h5" in run("--help", module="lteval.extract").stdout


def test_bad_input_through_the_real_command(tmp_path):
    r = run("--backbones", "timm:test_resnet", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "were not found locally" in r.stderr
    assert "Traceback" not in r.stderr and cache_entries() == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backbones", "timm:resnt18", "--allow-random-init"], "Closest matches: resnet18"),
        (["--backbones", "timm:test_resnet"], "were not found locally"),
        (["--backbones", "torchvision:resnet18"], "resnet18-f37072fd.pth"),
        (["--dataset", "folder", "--backbones", "timm:test_resnet"], "needs --data-root"),
        (
            ["--dataset", "folder", "--data-root", "/no/such", "--backbones", "timm:test_resnet"],
            "does not exist",
        ),
        (["--backbones", "timm:test_resnet", "--by", "speed"], "is not a metric column"),
        (["--device", "cuda:7", "--backbones", "timm:test_resnet"], "none is available"),
        ([], "give exactly one of --backbones (or --backbones-file) and --features"),
    ],
)
def test_bad_input_exits_2_with_message_and_empty_cache(args, message, tmp_path, capsys):
    code, err = run_inprocess(capsys, *args, "--out", str(tmp_path / "out"))
    assert code == 2 and message in err, err
    assert cache_entries() == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda f: (f.__delitem__("labels"), f.create_dataset("targets", data=np.zeros(3))),
            "lacks dataset(s) ['labels']",
        ),
        (lambda f: f["features"].__setitem__((0, 0), np.nan), "NaN or inf"),
        (
            lambda f: (f.__delitem__("labels"), f.create_dataset("labels", data=np.zeros(7, int))),
            "one label per row",
        ),
    ],
)
def test_bad_h5_features(mutate, message, tmp_path, capsys):
    feats = _h5_dir(tmp_path / "feats", names=("bb",))
    with h5py.File(feats / "bb" / "feature_train.h5", "a") as f:
        mutate(f)
    code, err = run_inprocess(capsys, "--features", str(feats), "--out", str(tmp_path / "out"))
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_one_lteval_command_lists_and_dispatches_every_program(capsys):
    from lteval.cli.main import COMMANDS, main

    top = run("--help", module="lteval")  # as a user runs it: python -m lteval
    assert top.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\b", top.stdout, re.M), name
    with pytest.raises(SystemExit) as e:
        main([])  # no command: usage, exit 2
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["bogus"])
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    for name in COMMANDS:  # every command has its own --help, under its new name
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: lteval {name}")


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["rank"], "lteval rank"),
        (["report", "/nonexistent"], "lteval report"),
        (["compare", "/no/a", "/no/b"], "lteval compare"),
        (["backbones", "list", "--family", "timm", "--filter", "zzzz", "--cached"], None),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, prog, capsys):
    from lteval.cli.main import main

    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    if prog is None:  # a valid command that finds nothing is not an error
        assert code == 0 and err == ["0 backbones"]
        return
    assert code == 2 and len(err) == 1 and err[0].startswith(f"{prog}: error: "), err


def test_old_entry_points_are_aliases():
    r = run(module="lteval.rank")  # python -m lteval.rank, as documented before
    assert r.returncode == 2
    assert r.stderr.startswith("python -m lteval.rank: error: give exactly one of --backbones")
