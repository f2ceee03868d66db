"""Bad input never crashes, never lies, never leaves a half-written report (issue 12):
16-bit images, empty class folders, sparse labels, degenerate data, unreadable
checkpoints, decompression bombs, an unwritable or full cache, Ctrl-C, locks held by
another run, and byte-identical results for one seed."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing as mp
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import CHEAP, folder_args, make_image_folder, short_config
from PIL import Image

from lteval.cli.rank import main as rank_main
from lteval.data import load_dataset
from lteval.data.datasets import to_rgb
from lteval.errors import CacheError
from lteval.features import cache


def _rank(args: list[str], out) -> int:
    """An in-process rank run with cheap settings: these tests check plumbing, not DLSA."""
    config = short_config(Path(out).parent)
    return rank_main([*args, *CHEAP, "--config", str(config), "--out", str(out)])


def _h5_run(root, ytr, yte, dim=8, seed=0):
    """--features folder with one backbone 'bb' whose features separate the classes."""
    rng = np.random.default_rng(seed)
    d = root / "bb"
    d.mkdir(parents=True)
    for name, y in (("feature_train.h5", ytr), ("feature_test.h5", yte)):
        centres = rng.normal(size=(int(max(ytr.max(), yte.max())) + 1, dim)) * 3
        with h5py.File(d / name, "w") as f:
            f["features"] = (centres[y] + rng.normal(size=(len(y), dim))).astype("f4")
            f["labels"] = y
    return root


# -- images -------------------------------------------------------------------------


def test_16_bit_png_is_scaled_not_clipped_white(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    with Image.open(tmp_path / "ramp.png") as im:
        assert im.mode.startswith("I")  # really a 16-bit file
        assert np.asarray(im.convert("RGB")).mean() > 250  # what PIL alone gives
        rgb = np.asarray(to_rgb(im))
    assert rgb.shape == (64, 64, 3)
    np.testing.assert_allclose(rgb[..., 0], np.round(ramp / 257), atol=1)
    assert rgb.min() == 0 and rgb.max() == 255


def test_16_bit_pngs_in_a_folder_dataset_keep_their_contrast(tmp_path):
    for c, level in enumerate((10000, 50000)):
        (tmp_path / f"c{c}").mkdir()
        for i in range(12):
            Image.fromarray(np.full((16, 16), level + i, np.uint16)).save(
                tmp_path / f"c{c}" / f"{i}.png"
            )
    ds = load_dataset("folder", tmp_path, eval_per_class=2, imbalance_factor=1)
    means = {int(ds.labels[i]): np.asarray(ds.image(i)).mean() for i in range(len(ds))}
    assert abs(means[0] - 10000 / 257) < 1 and abs(means[1] - 50000 / 257) < 1


def test_empty_class_folder_is_left_out_with_a_warning_and_recorded(tmp_path, caplog):
    root = make_image_folder(tmp_path / "imgs", sizes=(12, 12, 12))
    (root / "class_1b_empty").mkdir()
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", root, eval_per_class=2, imbalance_factor=1)
    assert ds.class_names == ["class_0", "class_1", "class_2"]
    assert sorted(np.unique(ds.labels).tolist()) == [0, 1, 2]
    assert ds.manifest()["empty_class_folders_left_out"] == ["class_1b_empty"]
    assert "class_1b_empty" in caplog.text and "left out" in caplog.text


def test_only_one_non_empty_class_folder_is_an_error(tmp_path, capsys):
    root = make_image_folder(tmp_path / "imgs", sizes=(12,))
    (root / "empty").mkdir()
    out = tmp_path / "run"
    assert _rank(folder_args(root, "random:timm:test_resnet"), out) == 2
    err = capsys.readouterr().err
    assert "1 class folder(s) with images" in err and not out.exists()


@pytest.mark.parametrize("skip", [False, True])
def test_decompression_bomb(image_folder, tmp_path, monkeypatch, capsys, skip):
    bomb = image_folder / "class_0" / "000.png"
    Image.fromarray(np.zeros((512, 512, 3), np.uint8)).save(bomb)  # 262,144 pixels
    # refused by Image.open above 100,000 pixels (the model's resized input is ~28,000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    out = tmp_path / "run"
    args = folder_args(image_folder, "random:timm:test_resnet")
    code = _rank([*args, *(["--skip-bad-images"] if skip else [])], out)
    err = capsys.readouterr().err
    if not skip:
        assert code == 2 and not out.exists()
        assert "000.png" in err and "DecompressionBombError" in err
        assert "--skip-bad-images" in err
        return
    assert code == 0
    row = json.loads((out / "results.json").read_text())["backbones"][0]
    assert row["skipped_images"] == [str(bomb)]
    html = (out / "index.html").read_text()
    assert 'id="skipped-images"' in html and str(bomb) in html
    assert "1 unreadable image(s) left out" in html


# -- labels and degenerate data --------------------------------------------------------


def test_sparse_h5_labels_are_remapped_and_recorded(tmp_path):
    ytr = np.repeat([0, 300, 600, 900], [60, 30, 15, 8])
    yte = np.repeat([0, 300, 600, 900], 10)
    feats = _h5_run(tmp_path / "feats", ytr, yte)
    out = tmp_path / "run"
    assert _rank(["--features", str(feats)], out) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["dataset"]["labels_remapped"] == {"bb": [0, 300, 600, 900]}
    assert [r["class_name"] for r in res["per_class"]] == ["0", "300", "600", "900"]
    assert res["backbones"][0]["n_eval"] == 40
    assert any("remapped to 4 classes" in w for w in res["run"]["warnings"])
    assert 'id="run-warnings"' in (out / "index.html").read_text()


def test_one_class_is_an_error(tmp_path, capsys):
    feats = _h5_run(tmp_path / "feats", np.zeros(40, int), np.zeros(10, int))
    out = tmp_path / "run"
    assert _rank(["--features", str(feats)], out) == 2
    assert "at least 2 classes" in capsys.readouterr().err and not out.exists()


def test_equal_class_sizes_are_a_warning_in_the_report(tmp_path):
    feats = _h5_run(tmp_path / "feats", np.tile([0, 1], 6), np.array([0, 1]))
    out = tmp_path / "run"
    assert _rank(["--features", str(feats)], out) == 0  # 1 of each class to validation
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["ranking_defined"] is False
    assert any("same number of train samples (5)" in w for w in res["run"]["warnings"])
    assert "no head and no tail" in (out / "index.html").read_text()


# -- checkpoints -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty (0 bytes)"), (b"not a checkpoint" * 8, "cannot read checkpoint")],
)
def test_empty_or_corrupt_checkpoint_exits_2_in_one_line(
    image_folder, tmp_path, capsys, content, message
):
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(content)
    out = tmp_path / "run"
    args = [*folder_args(image_folder, "timm:resnet18"), "--weights", f"timm:resnet18={ckpt}"]
    assert _rank(args, out) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(ckpt) in err and len(err.splitlines()) == 1
    assert not out.exists()


# -- cache folder: read-only, full, locked --------------------------------------------


def test_unwritable_cache_fails_before_any_work_naming_it(
    image_folder, tmp_path, monkeypatch, capsys
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LTEVAL_CACHE", str(blocker / "cache"))  # cannot be created
    out = tmp_path / "run"
    assert _rank(folder_args(image_folder, "random:timm:test_resnet"), out) == 2
    err = capsys.readouterr().err.strip()
    assert str(blocker / "cache") in err and "LTEVAL_CACHE" in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_read_only_cache_message(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cache.tempfile, "TemporaryFile", refuse)
    with pytest.raises(CacheError, match=r"is not writable \(Read-only file system\).*LTEVAL_C"):
        cache.check_writable(tmp_path)


def test_full_disk_while_extracting_names_the_cache_and_leaves_nothing(
    image_folder, tmp_path, monkeypatch, capsys
):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    out = tmp_path / "run"
    assert _rank(folder_args(image_folder, "random:timm:test_resnet"), out) == 2
    err = capsys.readouterr().err
    root = cache.cache_root()
    assert f"feature cache {root} is full" in err and "LTEVAL_CACHE" in err
    assert "Traceback" not in err and not out.exists()
    left = [p.name for p in root.iterdir() if p.name != ".locks"]
    assert all(p.startswith(".partial-") for p in left)  # no entry, no temporary file
    assert not [p for p in root.rglob("*") if p.is_file() and ".tmp" in p.name]


def _hold_lock(root, key, ready, release, held):
    with cache.entry_lock(key, root=root):
        held.value = os.getpid()  # set only inside the lock
        ready.set()
        assert release.wait(20)  # held until the parent releases it (exit 1 otherwise)


def test_lock_held_by_another_run_is_named_and_times_out(tmp_path, caplog):
    ctx = mp.get_context("fork")
    ready, release, held = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, "k", ready, release, held))
    holder.start()
    try:
        assert ready.wait(20)
        assert held.value == holder.pid  # the child holds the lock now
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING), pytest.raises(CacheError) as e:
            with cache.entry_lock("k", root=tmp_path, timeout=0.5):
                pass
        assert 0.4 < time.monotonic() - t0 < 10
        assert f"pid {holder.pid}" in str(e.value) and "raise lock_timeout" in str(e.value)
        assert "waiting for lock" in caplog.text and f"pid {holder.pid}" in caplog.text
    finally:
        release.set()
        holder.join(20)
    assert holder.exitcode == 0  # it held the lock to the end, and released it
    with cache.entry_lock("k", root=tmp_path, timeout=5):  # released when the holder ended
        pass


def test_a_lock_file_naming_a_live_process_does_not_block(tmp_path):
    (tmp_path / "k.lock").write_text(str(os.getppid()))  # the old format: a live pid
    (tmp_path / ".locks").mkdir()
    (tmp_path / ".locks" / "k.lock").write_text(str(os.getppid()))
    t0 = time.monotonic()
    with cache.entry_lock("k", root=tmp_path, timeout=0):
        pass
    assert time.monotonic() - t0 < 2


def test_a_crashed_holder_releases_its_lock(tmp_path):
    ctx = mp.get_context("fork")

    def crash():
        with cache.entry_lock("k", root=tmp_path):
            os._exit(1)  # no cleanup at all, as with kill -9

    p = ctx.Process(target=crash)
    p.start()
    p.join(20)
    with cache.entry_lock("k", root=tmp_path, timeout=2):
        pass


# -- interrupts and atomic output ----------------------------------------------------


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    "where", ["lteval.cli.rank.render_report", "lteval.features.runner.get_features"]
)
def test_ctrl_c_exits_130_and_leaves_the_previous_run(
    image_folder, tmp_path, monkeypatch, capsys, where
):
    out = tmp_path / "run"
    args = folder_args(image_folder, "random:timm:test_resnet")
    assert _rank(args, out) == 0
    before = _snapshot(out)
    entries = sorted(p.name for p in cache.cache_root().iterdir())
    capsys.readouterr()

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupt)
    assert _rank([*args, "--by", "probe_balanced"], out) == 130  # would change results.json
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "the feature cache and the output folder are as they were "
        "(finished extraction chunks are kept for the next run)"
    )
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run")) == []
    assert sorted(p.name for p in cache.cache_root().iterdir()) == entries


def test_out_holding_other_files_is_refused(image_folder, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert _rank(folder_args(image_folder, "random:timm:test_resnet"), out) == 2
    assert "holds notes.txt, and it has no .lteval-manifest.json" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep"


def test_same_seed_gives_byte_identical_results_files(
    image_folder, tmp_path, monkeypatch, two_threads
):
    args = folder_args(image_folder, "random:timm:test_resnet")
    runs = []
    for i in range(2):
        monkeypatch.setenv("LTEVAL_CACHE", str(tmp_path / f"cache{i}"))  # extract twice
        out = tmp_path / f"run{i}"
        assert _rank(args, out) == 0
        runs.append(out)
    for name in ("results.csv", "stages.csv", "per_class.csv"):
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name
    header = (runs[0] / "results.csv").read_text().splitlines()[0]
    assert "seconds" not in header
    timings = (runs[0] / "timings.csv").read_text().splitlines()[0].split(",")
    assert timings[0] == "backbone" and {"extract_seconds", "dlsa_seconds"} <= set(timings)
