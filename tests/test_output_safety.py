"""Output never deletes what a user wrote, and write errors are one line (issue 22).

A folder lteval replaces whole (a rank report, the validation study) carries a
manifest of what lteval wrote; anything else in it (notes, data, a cache, an edited
results file) stops the run before any work, and again at the swap itself.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
from conftest import CHEAP, folder_args, short_config

from lteval import atomic
from lteval.cli import common
from lteval.cli.rank import main as rank_main
from lteval.errors import OutputError, UsageError


def _write_run(target: Path, files=("results.json", "index.html")) -> None:
    with atomic.folder(target) as tmp:
        for name in files:
            (tmp / name).write_text(name)
        (tmp / "plots").mkdir()
        (tmp / "plots" / "a.png").write_bytes(b"png")


def test_a_folder_written_by_lteval_lists_its_files_and_is_replaced(tmp_path):
    out = tmp_path / "R"
    _write_run(out)
    files = json.loads((out / atomic.MANIFEST).read_text())["files"]
    assert sorted(files) == ["index.html", "plots/a.png", "results.json"]
    assert atomic.foreign(out) == []
    _write_run(out, files=("results.json",))  # a rerun replaces it whole
    assert not (out / "index.html").exists() and (out / "results.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["R"]  # no temporary left


def test_foreign_names_user_files_folders_links_and_edits(tmp_path):
    out = tmp_path / "R"
    _write_run(out)
    (out / "notes.txt").write_text("mine")
    (out / "mydata").mkdir()
    (out / "mydata" / "x.npy").write_bytes(b"1")
    (out / "plots" / "extra.png").write_bytes(b"2")
    (out / "index.html").write_text("edited")
    (out / "link").symlink_to(tmp_path)
    assert atomic.foreign(out) == [
        "index.html (changed since lteval wrote it)",
        "link (a link)",
        "mydata/",
        "notes.txt",
        "plots/extra.png",
    ]


def test_rerun_check_refuses_a_folder_with_user_files_and_keeps_them(tmp_path):
    out = tmp_path / "R"
    _write_run(out)
    (out / "notes.txt").write_text("mine")
    (out / "mydata").mkdir()
    with pytest.raises(UsageError, match=r"holds mydata/, notes.txt, and lteval did not write"):
        common.check_out(out)
    assert (out / "notes.txt").read_text() == "mine" and (out / "mydata").is_dir()


def test_a_file_added_during_the_run_stops_the_swap_and_both_folders_survive(tmp_path):
    out = tmp_path / "R"
    _write_run(out)
    with pytest.raises(OutputError, match=r"notes.txt.*kept as .*R\.new"):
        with atomic.folder(out) as tmp:
            (tmp / "results.json").write_text("new")
            (out / "notes.txt").write_text("written while the run ran")
    assert (out / "notes.txt").read_text() == "written while the run ran"
    assert (out / "results.json").read_text() == "results.json"  # the old run, untouched
    assert (tmp_path / "R.new" / "results.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R", "R.new"]


def test_a_folder_without_a_readable_manifest_is_never_replaced(tmp_path):
    mine = tmp_path / "mine"  # the user's own site: the names of a run's files
    mine.mkdir()
    (mine / "results.json").write_text('{"my experiment": 1}')
    (mine / "index.html").write_text("<h1>my site</h1>")
    with pytest.raises(UsageError, match=r"has no \.lteval-manifest\.json"):
        common.check_out(mine)
    out = tmp_path / "R"
    _write_run(out)
    (out / atomic.MANIFEST).write_text('{"written_by": "lteval", "fil')
    with pytest.raises(UsageError, match="is damaged, so lteval cannot tell its files"):
        common.check_out(out)
    (out / atomic.MANIFEST).unlink()  # deleted, and a results file edited: not provable
    (out / "results.json").write_text("edited")
    assert "results.json" in atomic.foreign(out)


def test_out_inside_an_input_folder_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(UsageError, match="inside --data-root .* read the report as data"):
        common.check_out(data / "report", inputs=[("--data-root", data), ("--features", None)])
    common.check_out(tmp_path / "report", inputs=[("--data-root", data)])


def test_out_that_holds_the_cache_the_current_folder_or_is_a_link_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "R"
    monkeypatch.setenv("LTEVAL_CACHE", str(out / "cache"))  # does not exist yet
    with pytest.raises(UsageError, match=r"holds LTEVAL_CACHE .*outside it"):
        common.check_out(out)
    monkeypatch.setenv("LTEVAL_CACHE", str(tmp_path / "cache"))
    out.mkdir()
    monkeypatch.chdir(out)
    with pytest.raises(UsageError, match="holds the current folder"):
        common.check_out(Path("."))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "L").symlink_to(out)
    with pytest.raises(UsageError, match="is a link"):
        common.check_out(tmp_path / "L")
    with pytest.raises(UsageError, match="--out is empty"):
        common.check_out("")


def test_rank_rerun_keeps_the_users_files_and_says_so(image_folder, tmp_path, capsys):
    out = tmp_path / "R"
    args = [
        *folder_args(image_folder, "random:timm:test_resnet"),
        *CHEAP,
        "--config",
        str(short_config(tmp_path)),
        "--out",
        str(out),
    ]
    assert rank_main(args) == 0
    assert atomic.foreign(out) == [] and (out / atomic.MANIFEST).is_file()
    (out / "notes.txt").write_text("keep")
    (out / "mydata").mkdir()
    (out / "mydata" / "a.csv").write_text("1")
    capsys.readouterr()
    assert rank_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mydata/, notes.txt" in err[0], err
    assert (out / "notes.txt").read_text() == "keep"
    assert (out / "mydata" / "a.csv").read_text() == "1"
    (out / "notes.txt").unlink()
    (out / "mydata" / "a.csv").unlink()
    (out / "mydata").rmdir()
    assert rank_main(args) == 0  # only its own files: a rerun replaces them


def test_an_os_write_error_becomes_one_output_error_naming_the_path(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.png"))

    with pytest.raises(OutputError, match=r"cannot write .*x.png: the disk is full"):
        with atomic.writing(tmp_path / "x.png") as tmp:
            full(tmp)
    assert list(tmp_path.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="a part of the path is a file"):
        atomic.write_text(blocker / "sub" / "a.txt", "x")
    other = OSError(errno.ECONNRESET, "reset")
    assert atomic.output_error(other, tmp_path) is None  # not about writing: stays a bug


def test_written_files_and_folders_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        _write_run(tmp_path / "R")
        atomic.write_text(tmp_path / "one.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "R").stat().st_mode) == 0o755  # not mkdtemp's 0700
    assert stat.S_IMODE((tmp_path / "R" / "results.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "one.txt").stat().st_mode) == 0o644  # not mkstemp's 0600


def test_export_report_and_compare_never_overwrite_a_users_file(image_folder, tmp_path, capsys):
    from lteval.cli.compare import main as compare_main
    from lteval.cli.extract import main as extract_main
    from lteval.cli.report import main as report_main

    exp = tmp_path / "exp" / "random_timm_test_resnet"
    exp.mkdir(parents=True)
    (exp / "feature_train.h5").write_text("mine")
    args = [*folder_args(image_folder, "random:timm:test_resnet"), "--quiet"]
    assert extract_main([*args, "--export-h5", str(tmp_path / "exp")]) == 2
    assert (
        "random_timm_test_resnet holds feature_train.h5, and it has no" in capsys.readouterr().err
    )
    assert (exp / "feature_train.h5").read_text() == "mine"
    (exp / "feature_train.h5").unlink()
    for _ in range(2):  # its own files: written, then replaced by a rerun
        assert extract_main([*args, "--export-h5", str(tmp_path / "exp")]) == 0
    assert atomic.foreign(exp) == []

    out = tmp_path / "R"
    run = [*args, *CHEAP, "--config", str(short_config(tmp_path)), "--out", str(out)]
    assert rank_main(run) == 0
    with open(out / "index.html", "a") as fh:
        fh.write("<!-- my notes -->")
    assert report_main([str(out)]) == 2
    assert "index.html, which lteval did not write or which changed" in capsys.readouterr().err
    assert (out / "index.html").read_text().endswith("<!-- my notes -->")

    cmp = tmp_path / "cmp"
    cmp.mkdir()
    (cmp / "compare.csv").write_text("mine")
    assert compare_main([str(out), str(out), "--out", str(cmp)]) == 2
    assert (cmp / "compare.csv").read_text() == "mine"
    (out / "index.html").unlink()
    assert report_main([str(out)]) == 0
    assert compare_main([str(out), str(out), "--out", str(out)]) == 0  # recorded: ...
    assert atomic.foreign(out) == []
    assert rank_main(run) == 0  # ... so the run folder can still be rerun


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_temporary(
    image_folder, tmp_path, monkeypatch, capsys
):
    import signal

    def killed(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr("lteval.cli.rank.render_report", killed)
    out = tmp_path / "R"
    args = folder_args(image_folder, "random:timm:test_resnet")
    run = [*args, *CHEAP, "--config", str(short_config(tmp_path)), "--out", str(out), "--quiet"]
    assert rank_main(run) == 143
    assert "terminated" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".R")) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
