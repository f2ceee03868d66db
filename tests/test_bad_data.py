"""The user's data, third round (issue 22): string h5 labels, dead features, splits
that cannot give a meaningful score, write errors after the work, and the weak cases
(EXIF orientation, empty paths, an empty backbones file, a class named when it is too
small, the carved split of h5 features recorded)."""

from __future__ import annotations

import errno
import json
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import CHEAP, folder_args, make_image_folder, short_config
from PIL import Image

from lteval import atomic
from lteval.cli.extract import main as extract_main
from lteval.cli.rank import main as rank_main
from lteval.data import load_dataset
from lteval.errors import DatasetError, FeatureError, FeatureFileError
from lteval.features import read_h5
from lteval.heads import logme
from lteval.rank import score_features


def _rank(args: list[str], out: Path) -> int:
    config = short_config(Path(out).parent)
    return rank_main([*args, *CHEAP, "--config", str(config), "--out", str(out)])


def _h5(root: Path, ytr, yte, dim: int = 8, scale: float = 1.0, name: str = "bb") -> Path:
    """--features folder with one backbone whose features separate the classes
    (``scale`` 0: all zero)."""
    rng = np.random.default_rng(0)
    d = root / name
    d.mkdir(parents=True)
    ids = {c: i for i, c in enumerate(sorted(set(ytr) | set(yte), key=str))}
    centres = rng.normal(size=(len(ids), dim)) * 3
    for file, y in (("feature_train.h5", ytr), ("feature_test.h5", yte)):
        rows = np.array([ids[c] for c in y])
        X = (centres[rows] + rng.normal(size=(len(y), dim))) * scale
        with h5py.File(d / file, "w") as f:
            f["features"] = X.astype("f4")
            f["labels"] = np.asarray(y)
    return root


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


LT = np.repeat([f"class-{c}".encode() for c in "abcd"], [60, 30, 15, 8])
TEST = np.repeat([f"class-{c}".encode() for c in "abcd"], 10)


# -- string labels -----------------------------------------------------------------


def test_byte_string_h5_labels_become_classes_named_in_per_class(tmp_path):
    feats = _h5(tmp_path / "f", LT, TEST)
    out = tmp_path / "run"
    assert _rank(["--features", str(feats)], out) == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["class_name"] for r in res["per_class"]] == [
        "class-a",
        "class-b",
        "class-c",
        "class-d",
    ]
    assert [r["train_count"] for r in res["per_class"]][0] == 48  # 60 less 12 to validation
    assert not res["run"]["warnings"]  # names are not "remapped ids"
    assert len(res["run"]["dataset"]["split_hash"]) == 16  # the carved split is recorded


def test_labels_that_are_not_text_or_mix_kinds_are_one_line(tmp_path):
    bad = tmp_path / "x.h5"
    with h5py.File(bad, "w") as f:
        f["features"] = np.zeros((2, 3), "f4") + np.arange(3)
        f["labels"] = np.array([b"\xff\xfe", b"ok"])
    with pytest.raises(FeatureFileError, match="not UTF-8 text"):
        read_h5(bad)
    feats = _h5(tmp_path / "f", LT, np.repeat([0, 1, 2, 3], 10))
    with pytest.raises(FeatureFileError, match="class names and the other's are integer ids"):
        from lteval.features import read_feature_dir

        read_feature_dir(feats)


# -- features that carry nothing ---------------------------------------------------


def test_all_zero_features_are_a_user_error_naming_the_backbone(tmp_path, capsys):
    feats = _h5(tmp_path / "f", LT, TEST, scale=0.0, name="dead_layer")
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no raw numpy warnings either
        code = _rank(["--features", str(feats), "--quiet"], out)
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("dead_layer: FAILED while scoring: its train features are all zero")
    assert err[1:] == ["every backbone failed: no results written"]


def test_constant_and_non_finite_features_are_refused_before_any_fit():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [20, 10, 5])
    good = rng.normal(size=(35, 4))
    splits = {"train": (good, y), "val": (good[:6], y[[0, 1, 20, 21, 30, 31]]), "eval": (good, y)}
    const = {**splits, "eval": (np.ones((35, 4)), y)}
    with pytest.raises(FeatureError, match="eval features are one constant vector"):
        score_features("b", const, num_classes=3)
    nan = good.copy()
    nan[3, 1] = np.nan
    with pytest.raises(FeatureError, match="train features hold NaN or inf in 1 of 35 rows"):
        score_features("b", {**splits, "train": (nan, y)}, num_classes=3)
    with pytest.raises(ValueError, match="not all zero"):
        logme(np.zeros((35, 4)), y)
    scaled = {k: (X * 1e18 / np.sqrt(np.mean(good**2)), y_) for k, (X, y_) in splits.items()}
    with pytest.raises(FeatureError, match=r"root mean square of 1(\.0*)?e\+18, outside 1e-15"):
        score_features("b", scaled, num_classes=3)


def test_features_at_a_scale_where_probes_fail_are_scored_with_a_warning():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [20, 10, 5])
    X = rng.normal(size=(35, 4)) * 1e-9
    splits = {"train": (X, y), "val": (X[:6], y[[0, 1, 20, 21, 30, 31]]), "eval": (X, y)}
    s = score_features("b", splits, num_classes=3, heads=[], dlsa_overrides={"flow_epochs": 1})
    assert re.search(r"root mean square of [0-9.]+e-(09|10), outside 1e-06", s.row["warning"])


# -- splits that cannot give a meaningful score ------------------------------------


@pytest.mark.parametrize(
    ("ytr", "yte"),
    [
        (np.arange(500), np.arange(500)),  # 500 classes of 1 sample: nothing to validate on
        (np.array([0, 1]), np.array([0, 1])),  # a 2-sample feature file
    ],
)
def test_too_little_data_for_validation_is_one_line_and_exit_2(tmp_path, capsys, ytr, yte):
    feats = _h5(tmp_path / "f", ytr, yte)
    out = tmp_path / "run"
    assert _rank(["--features", str(feats), "--quiet"], out) == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "the validation split holds 0 samples" in err and "at least 3 train samples" in err


def test_a_class_whose_images_are_all_unreadable_ends_the_run_naming_it(tmp_path, capsys):
    root = make_image_folder(tmp_path / "imgs", sizes=(30, 20, 14))
    for p in (root / "class_2").iterdir():
        p.write_bytes(b"not an image")
    out = tmp_path / "run"
    args = [*folder_args(root, "random:timm:test_resnet"), "--skip-bad-images", "--quiet"]
    assert _rank(args, out) == 2 and not out.exists()
    line = _one_line(capsys)
    assert "1 of 3 classes have no train samples (class_2; every image of them unreadable?)" in line


def test_a_class_without_eval_samples_is_a_warning_in_the_report(tmp_path):
    feats = _h5(tmp_path / "f", LT, TEST[TEST != b"class-d"])
    out = tmp_path / "run"
    assert _rank(["--features", str(feats)], out) == 0
    warning = json.loads((out / "results.json").read_text())["run"]["warnings"]
    assert any("1 of 4 classes have no eval samples (class-d)" in w for w in warning)
    assert "have no eval samples" in (out / "index.html").read_text()


def test_too_few_images_names_the_classes(tmp_path):
    root = make_image_folder(tmp_path / "imgs", sizes=(30, 20, 3))
    with pytest.raises(DatasetError, match=r"for 1 class\(es\), by their sample counts: class_2"):
        load_dataset("folder", root, eval_per_class=4)


# -- where output goes ---------------------------------------------------------------


def test_export_h5_under_a_file_fails_before_extracting(image_folder, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = folder_args(image_folder, "random:timm:test_resnet")
    assert extract_main([*args, "--export-h5", str(blocker / "h5"), "--quiet"]) == 2
    assert "lies under the file" in _one_line(capsys)
    assert extract_main([*args, "--export-h5", "", "--quiet"]) == 2
    assert "--export-h5 is empty" in _one_line(capsys)


def test_full_disk_while_writing_the_report_is_one_line_and_keeps_the_last_run(
    image_folder, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    args = folder_args(image_folder, "random:timm:test_resnet")
    assert _rank(args, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", full)
    assert _rank([*args, "--quiet"], out) == 2
    line = _one_line(capsys)
    assert "cannot write" in line and "the disk is full" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run")] == []


@pytest.mark.parametrize("option", ["--features", "--data-root", "--backbones-file", "--out"])
def test_an_empty_path_option_is_not_the_current_folder(option, capsys):
    assert rank_main([option, ""]) == 2
    assert f"{option} is empty" in _one_line(capsys)


def test_an_empty_backbones_file_is_named(tmp_path, capsys):
    listing = tmp_path / "backbones.txt"
    listing.write_text("# none yet\n\n")
    assert rank_main(["--backbones-file", str(listing), "--out", str(tmp_path / "r")]) == 2
    assert "lists no backbone (it is empty or only comments)" in _one_line(capsys)


# -- images ---------------------------------------------------------------------------


def test_exif_orientation_is_applied_and_recorded(tmp_path):
    root = tmp_path / "imgs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (30, 10), (200, 0, 0)).save(root / c / f"{i}.png")
    im = Image.new("RGB", (30, 10), (0, 200, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees to view
    im.save(root / "a" / "0.jpg", exif=exif)
    ds = load_dataset("folder", root, eval_per_class=2, imbalance_factor=1)
    i = next(i for i in range(len(ds)) if str(ds.images[i]).endswith("0.jpg"))
    assert ds.image(i).size == (10, 30)  # upright, as a photo viewer shows it
    assert ds.manifest()["exif_orientation"] == "applied"


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_a_torchscript_file_loads_without_a_deprecation_warning(tmp_path):
    from lteval.backbones import load_backbone

    torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))).save(str(tmp_path / "m.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        load_backbone(f"file:{tmp_path / 'm.pt'}")


def test_a_manifest_is_written_with_every_report(tmp_path):
    feats = _h5(tmp_path / "f", LT, TEST)
    out = tmp_path / "run"
    assert _rank(["--features", str(feats)], out) == 0
    files = json.loads((out / atomic.MANIFEST).read_text())["files"]
    assert {"results.json", "index.html", "ranking.png", "config.yaml"} <= set(files)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_binary_or_malformed_user_files_are_one_line(tmp_path, capsys):
    binary = tmp_path / "list.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    assert rank_main(["--backbones-file", str(binary)]) == 2
    assert "--backbones-file" in (line := _one_line(capsys)) and "is not UTF-8 text" in line
    assert rank_main(["--config", str(binary)]) == 2
    assert "--config" in _one_line(capsys)
    torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))).save(str(tmp_path / "m.pt"))
    (tmp_path / "m.pt.json").write_text("{bad json")
    from lteval.backbones import load_backbone
    from lteval.errors import BackboneError

    with pytest.raises(BackboneError, match="transform sidecar .* is not valid JSON"):
        load_backbone(f"file:{tmp_path / 'm.pt'}")


def _h5_file(path: Path, features, labels) -> Path:
    with h5py.File(path, "w") as f:
        f["features"] = features
        f["labels"] = labels
    return path


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.ones((4, 2), np.complex64), [0, 1, 0, 1], "are complex numbers"),
        (np.ones((4, 2)) * 1e300, [0, 1, 0, 1], "values beyond float32's range"),
        (np.eye(4, 2), [0.0, 1e20, 2e20, 3e20], "class ids must be below 2\\*\\*53"),
        (np.eye(4, 2), np.array([0, 1, 2, 2**63], np.uint64), "class ids must be below"),
        (
            np.zeros(4, [("a", "f4"), ("b", "f4")]),
            [0, 1, 0, 1],
            "'features' has a compound dtype \\(fields a, b\\)",
        ),
    ],
)
def test_h5_values_that_would_be_silently_wrong_are_refused(tmp_path, features, labels, message):
    with pytest.raises(FeatureFileError, match=message):
        read_h5(_h5_file(tmp_path / "x.h5", features, labels))


def test_h5_groups_and_broken_links_are_one_line(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_group("features")["x"] = np.eye(3)
        f["labels"] = [0, 1, 2]
    with pytest.raises(FeatureFileError, match="'features' is a Group, not a dataset"):
        read_h5(path)
    with h5py.File(path, "w") as f:
        f["features"] = h5py.ExternalLink(str(tmp_path / "missing.h5"), "/x")
        f["labels"] = [0, 1, 2]
    with pytest.raises(FeatureFileError, match="'features' is a link to '/x' in .*missing.h5"):
        read_h5(path)


def test_h5_data_kept_outside_the_file_is_never_read(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    with h5py.File(outside / "real.h5", "w") as f:
        f["x"] = np.ones((3, 2), np.float32)
    (outside / "raw.bin").write_bytes(np.ones((3, 2), np.float32).tobytes())
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:  # an existing target: h5py would read it silently
        f["features"] = h5py.ExternalLink(str(outside / "real.h5"), "/x")
        f["labels"] = [0, 1, 2]
    with pytest.raises(FeatureFileError, match="'features' is a link .* write the array itself"):
        read_h5(path)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", (3, 2), "f4", external=[(str(outside / "raw.bin"), 0, 24)])
        f["labels"] = [0, 1, 2]
    with pytest.raises(FeatureFileError, match="keeps its data in other files .*external"):
        read_h5(path)


def test_h5_sizes_are_checked_before_anything_is_allocated(tmp_path, monkeypatch):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:  # 10M x 10k declared, nothing stored: 373 GiB of fill
        f.create_dataset("features", (10_000_000, 10_000), "f4")
        f["labels"] = [0, 1, 2]
    assert path.stat().st_size < 100_000
    with pytest.raises(FeatureFileError, match=r"declares shape \(10000000, 10000\) \(373 GiB\)"):
        read_h5(path)
    with h5py.File(path, "w") as f:  # compressed: more than deflate could expand to
        f.create_dataset("features", (10_000_000, 10_000), "f4", chunks=(64, 64), compression=4)
        f["labels"] = [0, 1, 2]
    with pytest.raises(FeatureFileError, match="the file stores 0 bytes of it"):
        read_h5(path)
    with h5py.File(path, "w") as f:  # within the budget, but mostly unwritten chunks
        f.create_dataset("features", (200_000, 100), "f4", chunks=(64, 64), compression=4)
        f["features"][:10] = 1.0
        f["labels"] = [0, 1, 2]
    with pytest.raises(FeatureFileError, match="the file stores .* bytes of it"):
        read_h5(path)
    with h5py.File(path, "w") as f:  # a real, compressed file of the same size reads
        f.create_dataset(
            "features", data=np.ones((200_000, 100), "f4"), chunks=(64, 64), compression=4
        )
        f["labels"] = np.zeros(200_000, np.int64)
    assert read_h5(path)[0].shape == (200_000, 100)
    with h5py.File(path, "w") as f:  # sorted labels compress beyond deflate's 1,032:1
        f.create_dataset(
            "features", data=np.ones((200_000, 100), "f4"), chunks=(64, 64), scaleoffset=0
        )
        f.create_dataset("labels", data=np.repeat(np.arange(4), 50_000), scaleoffset=0)
    assert read_h5(path)[1].max() == 3
    with h5py.File(path, "w") as f:  # 100 fixed-length labels of 2 MB each, none stored
        f["features"] = np.ones((100, 2), "f4")
        f.create_dataset("labels", (100,), "S2000000")
    assert path.stat().st_size < 100_000
    with pytest.raises(FeatureFileError, match="'labels' declares shape \\(100,\\) .* stores 0"):
        read_h5(path)
    monkeypatch.setenv("LTEVAL_H5_MAX_BYTES", "8 GB")
    with pytest.raises(FeatureFileError, match="LTEVAL_H5_MAX_BYTES='8 GB' is not a whole"):
        read_h5(path)
    with h5py.File(path, "w") as f:
        f["features"] = np.ones((100, 200), "f4")
        f["labels"] = np.zeros(100, np.int64)
    monkeypatch.setenv("LTEVAL_H5_MAX_BYTES", str(10_000))
    with pytest.raises(FeatureFileError, match="over the memory budget of 9.31e-06 GiB"):
        read_h5(path)


def test_backbones_with_different_classes_are_not_ranked_together(tmp_path, capsys):
    root = _h5(tmp_path / "f", LT, TEST, name="a")
    other = np.array([b"ant", b"bee", b"cow", b"doe"])
    _h5(
        root, other[np.unique(LT, return_inverse=True)[1]], other[np.repeat(range(4), 10)], name="b"
    )
    out = tmp_path / "run"
    assert _rank(["--features", str(root), "--quiet"], out) == 2 and not out.exists()
    assert "backbones 'a' and 'b' hold different classes" in _one_line(capsys)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--bootstrap", "1"], "--bootstrap 1 is too few for a 95% interval"),
        (["--seed", str(2**56)], "--seed must be <= 2\\*\\*32 - 1"),
        (["--val-fraction", "0.99"], "--val-fraction must be in \\(0, 0.5\\]"),
        (["--heads", " , "], "--heads is empty"),
    ],
)
def test_options_that_gave_meaningless_runs_are_refused(options, message, capsys):
    assert rank_main([*options, "--features", "x"]) == 2
    assert re.search(message, _one_line(capsys))


def test_config_paths_expand_home_and_duplicate_keys_are_refused(tmp_path, monkeypatch, capsys):
    from lteval.cli.config import parse_with_config
    from lteval.cli.rank import build_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "c.yaml"
    config.write_text("out: ~/runs/r1\nfeatures: ~/feats\n")
    args = parse_with_config(build_parser(), ["--config", str(config)])
    assert args.out == str(tmp_path / "runs" / "r1") and args.features == str(tmp_path / "feats")
    config.write_text("bootstrap: 100\nseed: 1\nbootstrap: 200\n")
    assert rank_main(["--config", str(config)]) == 2
    assert "line 3 holds 'bootstrap' given twice (keep one)" in _one_line(capsys)
