"""Bad input, fourth round (issue 32): settings out of range, feature scales that
break the heads, names that are not mathtext, sizes that are not trusted, parsing,
output that is never someone else's file, special files, CSV cells. Each test fails
without its fix. (The crafted CIFAR pickle: tests/test_benchmark_datasets.py; h5
sizes, links and external storage: tests/test_bad_data.py.)"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import CHEAP, make_image_folder, short_config, write_h5_dir

from lteval import atomic
from lteval.cli.rank import main as rank_main
from lteval.data import DatasetError, load_dataset
from lteval.dlsa import DLSA, DLSAConfig, from_dict, scaled_for
from lteval.errors import OutputError, UsageError
from lteval.heads import CRT, BalancedSoftmaxProbe
from lteval.heads.linear import LinearConfig


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _blobs(n=120, d=6, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    return (rng.normal(size=(c, d)) * 4)[y] + rng.normal(size=(n, d)), y


# ---- 2. every setting range-checked: before any work on the command line, at fit


@pytest.mark.parametrize(
    "dlsa, message",
    [
        ("{classifier: {epochs: -1}}", r"classifier\.epochs = -1 must be >= 1"),
        ("{classifier: {epochs: 0}}", r"classifier\.epochs = 0 must be >= 1"),
        ("{classifier: {batch_size: 0}}", r"classifier\.batch_size = 0 must be >= 1"),
        ("{classifier: {patience: -5}}", r"classifier\.patience = -5 must be >= 1"),
        ("{classifier: {lr_grid: [0.01, -1]}}", r"lr_grid = \[0\.01, -1\] must be > 0"),
        ("{flow_lr: 0}", "flow_lr = 0 must be > 0"),
        ("{rho: 1.5}", r"rho = 1\.5 must be in \(0, 1\)"),
        ("{purity_threshold: 2}", r"purity_threshold = 2 must be in \[0, 1\]"),
        ("{flow_batch_size: 1}", "flow_batch_size = 1 must be >= 2"),
    ],
)
def test_settings_out_of_range_end_the_run_before_any_work(tmp_path, capsys, dlsa, message):
    feats = write_h5_dir(tmp_path / "f")
    config = tmp_path / "c.yaml"
    config.write_text(f"dlsa: {dlsa}\n")
    out = tmp_path / "run"
    args = ["--features", str(feats), *CHEAP, "--config", str(config), "--out", str(out)]
    assert rank_main(args) == 2 and not out.exists()
    assert re.search(message, _one_line(capsys))


@pytest.mark.parametrize(
    "make",
    [
        lambda: CRT(epochs=0),
        lambda: BalancedSoftmaxProbe(batch_size=0),
        lambda: BalancedSoftmaxProbe(patience=-5),
        lambda: DLSA(num_clusters=4, flow_epochs=1, classifier=LinearConfig(epochs=-1)),
        lambda: DLSA(num_clusters=0),
    ],
)
def test_estimators_check_their_ranges_at_fit(make):
    X, y = _blobs()
    est = make()  # stored unchanged (scikit-learn's rule) ...
    with pytest.raises(ValueError, match="must be >= 1"):
        est.fit(X, y)  # ... and checked at fit


def test_scaled_for_refuses_an_empty_training_set():
    with pytest.raises(ValueError, match="n_train = 0 must be a whole number >= 1"):
        scaled_for(0, 0)
    assert scaled_for(40, 2).num_clusters >= 1


def test_a_device_this_machine_lacks_is_refused_at_once():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="asked for CUDA but none is available"):
        DLSAConfig(device="cuda").validate()
    with pytest.raises(ValueError, match="not a torch device"):
        from_dict({"device": "tpu9"})


# ---- 3. feature magnitudes that break the heads, refused by the API


@pytest.mark.parametrize(
    "make, scale", [(BalancedSoftmaxProbe, 1e30), (lambda: DLSA(num_clusters=4), 1e20)]
)
def test_feature_scales_that_overflow_are_refused_by_the_estimators(make, scale):
    X, y = _blobs()
    with pytest.raises(ValueError, match="X has a root mean square of .* divide it"):
        make().fit(X * scale, y)
    with pytest.raises(ValueError, match="X_val has a root mean square"):
        make().fit(X, y, X_val=X[:30] * scale, y_val=y[:30])


def test_many_classes_and_mixed_labels(tmp_path):
    from lteval.heads import NCM

    X = np.random.default_rng(0).normal(size=(1500, 4))
    y = np.arange(1500) % 1000  # 1,000 classes: not "a regression problem"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NCM().fit(X, y)
    mixed = np.array([1, "a"] * 5, dtype=object)
    with pytest.raises(ValueError, match="y mixes int and str labels"):
        NCM().fit(X[:10], mixed)


# ---- 4. names reach plots as literal text


@pytest.mark.parametrize("names", [("net$\\undefinedmacro$", "_hidden"), ("x" * 120, "y" * 120)])
def test_backbone_names_are_drawn_as_they_are(tmp_path, names, capsys):
    feats = write_h5_dir(tmp_path / "f", names=names)
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = rank_main(
            ["--features", str(feats), *CHEAP, "--config", str(short_config(tmp_path))]
            + ["--out", str(out), "--quiet"]
        )
    assert code == 0, capsys.readouterr().err
    assert not [w for w in caught if "layout" in str(w.message).lower()]
    from lteval.report import plots

    stages = json.loads((out / "results.json").read_text())["stages"]
    import matplotlib.pyplot as plt

    captured = {}
    real = plots.legend

    def spy(ax, handles, shown, **kw):
        real(ax, handles, shown, **kw)
        captured["labels"] = [t.get_text() for t in ax.get_legend().get_texts()]

    plots.legend = spy
    try:
        plots.stage_curves(stages, tmp_path)
    finally:
        plots.legend = real
        plt.close("all")
    assert sorted(captured["labels"]) == sorted(plots.shown(n) for n in names)  # "_hidden" too
    assert all(len(t) <= plots.LABEL_MAX for t in captured["labels"])


# ---- 5 and 6. sizes and parsing of benchmark lists, config files and sidecars


def _lists(root: Path, label: str) -> Path:
    (root / "a.png").parent.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        (root / f"ImageNet_LT_{split}.txt").write_text(f"a.png 0\nb.png {label}\n")
    return root


@pytest.mark.parametrize(
    "label, message", [("2000000000", "label 2000000000 is not a class id"), ("-1", "label -1")]
)
def test_benchmark_list_labels_are_bounded_before_anything_is_built(tmp_path, label, message):
    with pytest.raises(DatasetError, match=f"ImageNet_LT_train.txt:2: {message}"):
        load_dataset("imagenet-lt", _lists(tmp_path, label))


@pytest.mark.parametrize(
    "text, message",
    [
        ("? [a, b]\n: 1\n", "line 1 holds a key that is a list or mapping"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "weights: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
            "line 2 holds an alias \\*a of a list or mapping",
        ),
        ("weights: {x: [1, 2, 3]}\n", "give a list of strings"),
    ],
)
def test_config_files_that_crash_or_explode_are_one_short_line(tmp_path, capsys, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    assert rank_main(["--config", str(config), "--features", "x"]) == 2
    line = _one_line(capsys)
    assert re.search(message, line) and len(line) < 400


def test_yaml_merge_keys_still_work(tmp_path):
    from lteval.errors import read_user_yaml

    config = tmp_path / "c.yaml"
    config.write_text("x: &short {flow_epochs: 2, num_stages: 1}\ndlsa: {<<: *short, rho: 0.2}\n")
    assert read_user_yaml(config, "--config", UsageError)["dlsa"] == {
        "flow_epochs": 2,
        "num_stages": 1,
        "rho": 0.2,
    }


def test_a_sidecar_with_an_unknown_key_is_one_line(tmp_path):
    from lteval.backbones.families.file import sidecar_config
    from lteval.errors import BackboneError

    side = tmp_path / "m.pt.json"
    side.write_text('{"input_size": [3, 64, 64], "colour": "red"}')
    with pytest.raises(BackboneError, match=r"unknown key\(s\) \['colour'\]; known: input_size"):
        sidecar_config(side)
    side.write_text('{"input_size": [3, 0, 64]}')
    with pytest.raises(BackboneError, match="input_size = \\[3, 0, 64\\]; it takes"):
        sidecar_config(side)
    side.write_text('{"std": [0.2, 0, 0.2], "crop_pct": 0.9}')
    with pytest.raises(BackboneError, match="std = .* three positive numbers"):
        sidecar_config(side)
    side.write_text('{"input_size": [3, 64, 64], "crop_pct": 0.9, "interpolation": "bicubic"}')
    assert sidecar_config(side)["crop_pct"] == 0.9


def test_the_api_refuses_what_it_would_ignore_or_crash_on(tmp_path):
    import lteval.rank

    feats = write_h5_dir(tmp_path / "f")
    with pytest.raises(UsageError, match="feature_dir must be a folder path, got int"):
        lteval.rank.run_features(123)
    with pytest.raises(UsageError, match="dataset must be a dataset name .* got int"):
        lteval.rank.run(["timm:test_resnet"], dataset=123)
    with pytest.raises(TypeError, match="weights"):  # not a parameter of run_features
        lteval.rank.run_features(feats, weights={"a": "b.pt"})


def test_weights_with_features_is_refused_on_the_command_line(tmp_path, capsys):
    feats = write_h5_dir(tmp_path / "f")
    assert rank_main(["--features", str(feats), "--weights", "a=b.pt", "--out", "x"]) == 2
    assert "--weights is for backbones extracted here" in _one_line(capsys)


def test_a_numpy_seed_is_written_as_an_int(tmp_path):
    import lteval.rank

    feats = write_h5_dir(tmp_path / "f")
    result = lteval.rank.run_features(
        feats,
        seed=np.int64(3),
        bootstrap=np.int64(0),
        heads=["ncm"],
        dlsa={"flow_epochs": 2, "num_stages": 1},
        progress=False,
    )
    result.write(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["run"]["seed"] == 3


# ---- 7. never overwrite what lteval did not write


def test_export_folders_that_would_collide_or_lead_outside_are_refused(tmp_path):
    from lteval.cli.extract import export_folders

    with pytest.raises(UsageError, match="'file:/x/m/a.pt' and 'file:/x/m_a.pt' would both"):
        export_folders(str(tmp_path), ["file:/x/m/a.pt", "file:/x/m_a.pt"])
    with pytest.raises(UsageError, match="would both be written"):
        export_folders(str(tmp_path), ["timm:ResNet", "timm:resnet"])  # case-blind disks
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "timm_a").symlink_to(outside)
    with pytest.raises(UsageError, match="timm_a is a link"):
        export_folders(str(tmp_path / "exp"), ["timm:a"])
    assert list(outside.iterdir()) == []


def test_rank_result_write_keeps_a_users_results_file(tmp_path):
    import lteval.rank

    feats = write_h5_dir(tmp_path / "f")
    result = lteval.rank.run_features(
        feats,
        bootstrap=0,
        heads=["ncm"],
        dlsa={"flow_epochs": 2, "num_stages": 1},
        progress=False,
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("my table")
    with pytest.raises(OutputError, match="results.csv, which lteval did not write"):
        result.write(out)
    assert (out / "results.csv").read_text() == "my table"
    (out / "results.csv").unlink()
    result.write(out)
    result.write(out)  # its own files, recorded in the manifest: replaced
    assert atomic.foreign(out) == []


def test_a_users_unreadable_manifest_is_never_rewritten(tmp_path, capsys):
    from lteval.cli.compare import main as compare_main

    feats = write_h5_dir(tmp_path / "f")
    run = tmp_path / "run"
    args = ["--features", str(feats), *CHEAP, "--config", str(short_config(tmp_path))]
    assert rank_main([*args, "--out", str(run), "--quiet"]) == 0
    cmp = tmp_path / "cmp"
    cmp.mkdir()
    (cmp / atomic.MANIFEST).write_text("my notes, not JSON")
    assert compare_main([str(run), str(run), "--out", str(cmp)]) == 2
    assert "holds a .lteval-manifest.json that lteval cannot read" in capsys.readouterr().err
    assert (cmp / atomic.MANIFEST).read_text() == "my notes, not JSON"
    assert not (cmp / "compare.html").exists()


def test_a_report_being_written_is_not_a_users_file(tmp_path):
    run = tmp_path / "R"
    with atomic.folder(run) as tmp:
        (tmp / "index.html").write_text("x")
    (run / ".index.html.abc_1234.tmp").write_text("being written")  # writing()'s temporary
    assert atomic.foreign(run) == []
    (run / ".notes.abc_1234.tmp").write_text("mine")  # beside nothing lteval wrote
    (run / ".index.html.mine.tmp").write_text("mine")  # not writing()'s name
    assert atomic.foreign(run) == [".index.html.mine.tmp", ".notes.abc_1234.tmp"]


def test_a_killed_runs_temporary_folder_is_cleaned_and_logged(tmp_path, caplog):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    here = atomic._machine()

    def leftover(name: str, kind: str, pid: int, where: str = here, **files) -> Path:
        p = tmp_path / f".{name}.{kind}-{pid}@{where}-abcd1234"
        p.mkdir()
        for f, text in files.items():
            (p / f).write_text(text)
        return p

    stale = leftover("R", "tmp", dead.pid, **{"results.json": "{}"})
    alive = leftover("R", "tmp", os.getpid())  # a live run's: kept
    elsewhere = leftover("R", "tmp", dead.pid, "otherhost~1")  # another machine's: kept
    huge = leftover("R", "tmp", 10**20)  # not a pid: kept, no OverflowError
    with atomic.folder(tmp_path / "R") as tmp:
        (tmp / "a.txt").write_text("a")
    assert not stale.exists() and alive.exists() and elsewhere.exists() and huge.exists()
    assert f"removed {stale.name}, left by a run that was killed" in caplog.text
    old = leftover("S", "old", dead.pid, **{"results.json": "previous"})  # killed mid-swap
    atomic._leftovers(tmp_path / "S")  # what folder() does first: the old one put back
    assert (tmp_path / "S" / "results.json").read_text() == "previous" and not old.exists()
    assert "put back the previous folder" in caplog.text
    mine = leftover("S", "old", dead.pid, **{"my_notes.txt": "mine"})  # S exists again
    atomic._leftovers(tmp_path / "S")
    assert (mine / "my_notes.txt").read_text() == "mine"  # a user's files: never removed
    assert f"kept {mine.name}" in caplog.text and "my_notes.txt" in caplog.text


# ---- 8. special files among images


def test_a_fifo_among_images_is_skipped_with_a_named_warning(tmp_path, caplog):
    root = make_image_folder(tmp_path / "images", sizes=(12, 12))
    os.mkfifo(root / "class_0" / "x.png")
    ds = load_dataset("folder", root, eval_per_class=2)
    assert all(Path(p).name != "x.png" for p in ds.images)
    assert "are not regular files" in caplog.text and "x.png" in caplog.text
    assert ds.manifest()["special_files_skipped"] == ["class_0/x.png"]


def test_a_listed_fifo_is_an_unreadable_image_not_a_hang(tmp_path):
    from lteval.data import ImageDataset

    os.mkfifo(tmp_path / "x.png")
    ds = ImageDataset.__new__(ImageDataset)
    ds.images = [tmp_path / "x.png"]
    with pytest.raises(OSError, match="not a regular file"):
        ds.image(0)


# ---- the weak ones


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised():
    import pandas as pd

    from lteval.rank.results import csv_text

    names = ["=HYPERLINK(1)", "+a", "-b", "@c", "ok", "-1", "+2.5e3", "-1+1"]
    df = pd.DataFrame({"backbone": names, "x": [-1.5] * len(names)})
    lines = csv_text(df).splitlines()
    assert [line.rsplit(",", 1)[0] for line in lines[1:]] == [
        "'=HYPERLINK(1)",
        "'+a",
        "'-b",
        "'@c",
        "ok",
        "-1",
        "+2.5e3",
        "'-1+1",
    ]  # a class named "-1" is a number, not a formula: written as it is
    assert all(line.endswith(",-1.5") for line in lines[1:])


def test_a_checkpoint_of_another_pickle_protocol_gives_no_torch_warning(tmp_path):
    import torch

    from lteval.backbones.checkpoints import load_weights_only

    path = tmp_path / "w.pt"
    torch.save({"a": torch.ones(2)}, path, pickle_protocol=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_weights_only(path)["a"].tolist() == [1.0, 1.0]


def test_the_report_says_which_names_were_quoted_in_the_csv_files(tmp_path, capsys):
    feats = write_h5_dir(tmp_path / "f", names=("=1+2", "plain"))
    out = tmp_path / "run"
    args = ["--features", str(feats), *CHEAP, "--config", str(short_config(tmp_path))]
    assert rank_main([*args, "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    import pandas as pd

    assert sorted(pd.read_csv(out / "results.csv")["backbone"]) == ["'=1+2", "plain"]
    assert {r["backbone"] for r in json.loads((out / "results.json").read_text())["backbones"]} == {
        "=1+2",
        "plain",
    }
    page = (out / "index.html").read_text()
    assert 'id="csv-cells"' in page and "<strong>Quoted here:</strong>\n<code>=1+2</code>" in page


def test_a_failure_while_drawing_does_not_blame_results_json(tmp_path, monkeypatch):
    """The results files in the run's temporary folder are recorded in its manifest,
    so a plotting bug surfaces as the bug it is, not as "results.json has no manifest,
    rerun with --out <a temporary folder>"."""
    feats = write_h5_dir(tmp_path / "f")

    def broken(*a, **k):
        raise ValueError("a plotting bug")

    monkeypatch.setattr("lteval.report.plots.ranking_bar", broken)
    out = tmp_path / "run"
    args = ["--features", str(feats), *CHEAP, "--config", str(short_config(tmp_path))]
    with pytest.raises(ValueError, match="a plotting bug"):
        rank_main([*args, "--out", str(out), "--quiet"])
    assert not out.exists()


def test_a_dlsa_settings_file_is_read_as_safely_as_a_config_file(tmp_path):
    from lteval.dlsa import from_yaml

    f = tmp_path / "dlsa.yaml"
    f.write_text("a: &a [1, 1, 1]\nb: [*a, *a]\n")
    with pytest.raises(ValueError, match="line 2 holds an alias \\*a of a list or mapping"):
        from_yaml(f)
    f.write_text("a: 1\na: 2\n")  # safe_load kept the last one in silence
    with pytest.raises(ValueError, match="line 2 holds 'a' given twice"):
        from_yaml(f)
    marker = tmp_path / "ran"  # read_user_yaml's loader is a SafeLoader: no tag runs code
    f.write_text(f"num_clusters: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        from_yaml(f)
    assert not marker.exists()


def test_every_reader_of_a_users_file_is_one_of_the_audited_ones():
    """The audit of docs/usage.md, kept true: a new ``pickle.load``, ``torch.load``,
    ``yaml.load`` or ``np.load(..., allow_pickle=True)`` anywhere in lteval fails here
    until it is reviewed and added to the audit."""
    audited = {
        ("data/safe_pickle.py", "Unpickler"),  # the data-only unpickler itself
        ("data/safe_pickle.py", "pickle.Unpickler"),
        ("backbones/checkpoints.py", "torch.load("),  # weights_only=True
        ("backbones/families/file.py", "torch.jit.load("),  # TorchScript, the user's model
        ("errors.py", "yaml.load("),  # read_user_yaml's SafeLoader subclass
    }
    risky = (
        "pickle.load",
        "pickle.Unpickler",
        "Unpickler",
        "torch.load(",
        "torch.jit.load(",
        "yaml.load(",
        "yaml.safe_load(",
        "yaml.unsafe_load",
        "yaml.full_load",
        "allow_pickle=True",
        "marshal.load",
        "shelve.open",
        "jsonpickle",
        "dill.",
    )
    root = Path(__file__).resolve().parents[1] / "lteval"
    found = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        for line in path.read_text().splitlines():
            code = line.split("#")[0]
            if '"""' in line or "``" in line:  # docstrings that name the calls
                continue
            found |= {(rel, r) for r in risky if r in code}
    assert found == audited
    assert "weights_only=True" in (root / "backbones/checkpoints.py").read_text()
