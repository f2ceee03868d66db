"""End-to-end tests of ``python -m lteval.rank`` / ``lteval.extract`` as a user runs them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import (
    CHEAP,
    cache_entries,
    call,
    folder_args,
    run_cli,
    short_config,
    write_h5_dir,
)

TINY = "timm:test_resnet,timm:test_vit"


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
    # the header says what ran: flows, their precision, device, torch version, threads
    header = html.split('id="flow-run"')[1].split("</span>")[0]
    assert f"{rows[0]['flow_seeds']} flow(s) per stage" in header
    assert f"trained in {rows[0]['flow_precision']}" in header
    assert rows[0]["flow_precision"] in ("float32", "bfloat16")
    assert f"torch {res['run']['versions']['torch']}" in html
    assert f"{res['run']['torch_threads']} CPU thread(s)" in html
    for img in re.findall(r'<img src="([^"]+)"', html):
        assert (out / img).stat().st_size > 1000
    stages = pd.read_csv(out / "stages.csv")
    assert set(stages["backbone"]) == {r["backbone"] for r in rows}
    per_class = pd.read_csv(out / "per_class.csv")
    assert len(per_class) == n * num_classes
    return res


@pytest.mark.slow
def test_rank_images_end_to_end_and_cache_reuse(image_folder, tmp_path, capsys):
    out = tmp_path / "report"
    args = [
        *folder_args(image_folder, TINY),
        "--out",
        str(out),
        "--device",
        "cpu",
        *CHEAP,
        "--config",
        str(short_config(tmp_path)),
    ]
    code, _, first = call(capsys, *args)
    assert code == 0, first
    res = check_report(out, 2, num_classes=3)
    assert "RANDOM weights" in first and "extracting" in first
    html = (out / "index.html").read_text()
    assert 'id="weights-warning"' in html
    assert 'id="study-panel-lt-methods"' in html  # the shipped study's later panel, quoted
    assert res["run"]["random_weights"] == ["timm:test_resnet", "timm:test_vit"]
    assert all(r["pretrained"] is False and r["weights"] == "random-init" for r in res["backbones"])
    assert res["backbones"][0]["dlsa_settings"]["num_clusters"] >= 6
    assert len(cache_entries()) == 2
    code, _, second = call(capsys, *args, "--out", str(tmp_path / "again"))
    assert code == 0 and "extracting train" not in second
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert [r["separability"] for r in again["backbones"]] == [
        r["separability"] for r in res["backbones"]
    ]  # same seed, same result
    with pytest.raises(SystemExit) as e:  # argparse: RESULTS_DIR is required
        call(capsys, "--out", str(out), program="report")
    assert e.value.code == 2
    assert call(capsys, str(out), program="report")[0] == 0


@pytest.mark.slow
def test_rank_precomputed_h5_features(tmp_path, capsys):
    feats, out = write_h5_dir(tmp_path / "feats"), tmp_path / "out"
    code, _, err = call(
        capsys, "--features", str(feats), "--out", str(out), "--by", "dlsa_balanced", *CHEAP
    )
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    assert {x["backbone"] for x in res["backbones"]} == {"bb_a", "bb_b"}
    bal = [x["dlsa_balanced"] for x in res["backbones"]]
    assert bal == sorted(bal, reverse=True) and res["run"]["ranked_by"] == "dlsa_balanced"
    assert (
        res["backbones"][0]["n_eval"] == 100 and "precomputed" in (out / "index.html").read_text()
    )
    assert cache_entries() == []


@pytest.mark.slow
def test_extract_exports_h5_that_rank_reads_back(image_folder, tmp_path, capsys):
    exp = tmp_path / "h5"
    args = [*folder_args(image_folder, "timm:test_resnet"), "--export-h5", str(exp)]
    code, out_text, err = call(capsys, *args, program="extract")
    assert code == 0, err
    name, key = out_text.strip().split("\t")
    assert name == "timm:test_resnet" and cache_entries() == [key]
    cached = np.load(Path(os.environ["LTEVAL_CACHE"]) / key / "eval_features.npy")
    with h5py.File(exp / "timm_test_resnet" / "feature_test.h5") as f:
        np.testing.assert_allclose(f["features"][:], cached)
    out = tmp_path / "out"
    cfg = short_config(tmp_path)  # plumbing: a short DLSA
    assert (
        call(capsys, "--features", str(exp), "--out", str(out), *CHEAP, "--config", str(cfg))[0]
        == 0
    )
    assert (
        json.loads((out / "results.json").read_text())["backbones"][0]["backbone"]
        == "timm_test_resnet"
    )


def test_help_documents_the_options():
    from lteval.cli.extract import build_parser as extract_parser
    from lteval.cli.rank import build_parser

    text = build_parser().format_help()
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
    assert "--export-h5" in extract_parser().format_help()


def test_bad_input_through_the_real_command(tmp_path):
    r = run_cli("--backbones", "timm:test_resnet", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "were not found locally" in r.stderr
    assert "Traceback" not in r.stderr and cache_entries() == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backbones", "timm:resnt18", "--allow-random-init"], "Closest matches: resnet18"),
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
    feats = write_h5_dir(tmp_path / "feats", names=("bb",))
    with h5py.File(feats / "bb" / "feature_train.h5", "a") as f:
        mutate(f)
    code, err = run_inprocess(capsys, "--features", str(feats), "--out", str(tmp_path / "out"))
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_one_lteval_command_lists_and_dispatches_every_program(capsys):
    from lteval.cli.main import COMMANDS, main

    top = run_cli("--help", module="lteval")  # as a user runs it: python -m lteval
    assert top.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\b", top.stdout, re.M), name
    with pytest.raises(SystemExit) as e:
        main([])  # no command: usage, exit 2
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["bogus"])
    assert e.value.code == 2
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
    r = run_cli(module="lteval.rank")  # python -m lteval.rank, as documented before
    assert r.returncode == 2
    assert r.stderr.startswith("python -m lteval.rank: error: give exactly one of --backbones")


def test_weights_name_equals_path_loads_that_checkpoint(image_folder, tmp_path, capsys):
    """--weights NAME=PATH (and its --config mapping form) runs NAME with the file's
    weights: pretrained, its sha256 recorded, features unlike random ones."""
    import hashlib

    import timm
    import torch

    from lteval.cli.rank import main

    ckpt = tmp_path / "mine.pth"
    torch.manual_seed(1)
    torch.save(timm.create_model("test_resnet", num_classes=0).state_dict(), ckpt)
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    base = [*folder_args(image_folder, "timm:test_resnet"), *CHEAP, "--quiet"]
    base.remove("--allow-random-init")  # weights must come from the file
    base += ["--config", str(short_config(tmp_path))]
    out = tmp_path / "flag"
    assert main([*base, "--weights", f"timm:test_resnet={ckpt}", "--out", str(out)]) == 0
    row = json.loads((out / "results.json").read_text())["backbones"][0]
    assert row["pretrained"] is True and row["weights_kind"] == "pretrained"
    assert row["weights"] == str(ckpt) and row["weights_sha256"] == sha[:12]
    config = tmp_path / "w.yaml"
    config.write_text(
        f"weights: {{'timm:test_resnet': {ckpt}}}\ndlsa: {{flow_epochs: 2, num_stages: 1}}\n"
    )
    out2 = tmp_path / "config"
    args = [*base[: base.index("--config")], "--config", str(config), "--out", str(out2)]
    assert main(args) == 0
    again = json.loads((out2 / "results.json").read_text())["backbones"][0]
    assert again["cache_key"] == row["cache_key"]  # the same file: the same cached features
    rnd = tmp_path / "random"
    assert main([*base, "--allow-random-init", "--out", str(rnd)]) == 0
    random_row = json.loads((rnd / "results.json").read_text())["backbones"][0]
    assert random_row["pretrained"] is False and random_row["cache_key"] != row["cache_key"]
    capsys.readouterr()


def test_dlsa_settings_in_config_reach_the_fit(tmp_path):
    from lteval.cli.rank import main

    feats = write_h5_dir(tmp_path / "feats", names=("bb_a",))
    config = tmp_path / "d.yaml"
    config.write_text("dlsa: {num_clusters: 7, flow_epochs: 2, num_stages: 1, rho: 0.25}\n")
    out = tmp_path / "out"
    args = ["--features", str(feats), *CHEAP, "--quiet", "--config", str(config)]
    assert main([*args, "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    row = res["backbones"][0]
    assert row["dlsa_settings"]["num_clusters"] == 7 and row["dlsa_settings"]["rho"] == 0.25
    assert row["stages_run"] == 1 and [s["stage"] for s in res["stages"]] == [1]
    assert yaml.safe_load((out / "config.yaml").read_text())["dlsa"]["num_clusters"] == 7
    config.write_text("dlsa: {preset: paper, flow_epochs: 2, num_stages: 1}\n")
    out2 = tmp_path / "paper"
    assert main([*args, "--out", str(out2)]) == 0
    paper = json.loads((out2 / "results.json").read_text())["backbones"][0]["dlsa_settings"]
    from lteval.dlsa import preset

    expected = {**preset("paper").to_dict(), "flow_epochs": 2, "num_stages": 1}
    skip = ("device", "classifier")  # where it ran; the stage classifier's own settings
    assert {k: v for k, v in paper.items() if k not in skip} == {
        k: v for k, v in expected.items() if k not in skip
    }  # the preset replaced the scaled defaults; the two overrides apply on top
