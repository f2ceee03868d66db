"""``lteval.rank.run``, the pipeline as a library call: typed arguments in, a
``RankResult`` out, and the same results files as the ``lteval rank`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import CHEAP, write_h5_dir

import lteval.rank
from lteval.dlsa import DLSAConfig
from lteval.errors import FeatureFileError, UsageError
from lteval.features import RunOptions
from lteval.rank.bootstrap import _metrics

DLSA = {"flow_epochs": 3, "num_stages": 2}


@pytest.fixture(scope="module")
def h5(tmp_path_factory):
    return write_h5_dir(tmp_path_factory.mktemp("feats"), names=("bb_a", "bb_b", "bb_c"))


@pytest.fixture(scope="module")
def result(h5):
    return lteval.rank.run_features(
        h5, heads=["ncm"], bootstrap=40, seed=3, dlsa=DLSA, progress=False
    )


def test_run_returns_ranked_scores_and_validity(result):
    table = result.table()
    assert list(table["backbone"]) == sorted(
        table["backbone"], key=lambda b: -table.set_index("backbone").loc[b, "separability"]
    )
    assert list(table["rank"]) == [1, 2, 3]
    assert {"ncm_balanced", "dlsa_balanced", "probe_balanced"} <= set(table.columns)
    assert "ce_balanced" not in table.columns  # only the heads asked for
    assert result.run["heads"] == ["ncm"] and result.run["seed"] == 3
    assert result.validity["n_boot"] == 40
    assert set(result.validity["intervals"]) == {"bb_a", "bb_b", "bb_c"}


def test_headline_numbers_equal_the_bootstraps_full_sample_recomputation(result):
    """The row's separability and accuracies are what the bootstrap recomputes from the
    stored eval arrays on the whole eval split: the intervals bracket the same number."""
    for s in result.ok:
        full = _metrics(s.arrays, np.arange(len(s.arrays.y)))
        assert full["separability"] == pytest.approx(s.row["separability"], abs=1e-12)
        for k in ("dlsa_balanced", "probe_few", "ncm_overall", "lift_balanced"):
            assert full[k] == pytest.approx(s.row[k], abs=1e-12), k


def test_the_command_writes_what_the_library_returns(result, h5, tmp_path):
    from lteval.cli.rank import main

    lib = tmp_path / "lib"
    result.write(lib)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"dlsa": DLSA}))  # YAML is a superset of JSON
    cli = tmp_path / "cli"
    args = ["--features", str(h5), *CHEAP, "--seed", "3", "--config", str(config)]
    assert main([*args, "--quiet", "--out", str(cli)]) == 0
    for name in ("results.csv", "stages.csv", "per_class.csv"):
        assert (lib / name).read_bytes() == (cli / name).read_bytes(), name
    recorded = json.loads((cli / "results.json").read_text())["run"]["command"]
    assert recorded == "lteval rank " + " ".join([*args, "--quiet", "--out", str(cli)])


def test_run_checks_its_arguments_before_any_work(h5):
    with pytest.raises(UsageError, match=r"give backbones .*run_features"):
        lteval.rank.run([])
    with pytest.raises(TypeError, match="feature_dir"):  # two entry points, one per case
        lteval.rank.run(["timm:test_resnet"], feature_dir=h5)
    with pytest.raises(UsageError, match="not a metric column"):
        lteval.rank.run_features(h5, by="accuracy")
    with pytest.raises(UsageError, match=r"which heads=\['ncm'\] does not run"):
        lteval.rank.run_features(h5, by="ce_balanced", heads=["ncm"])
    with pytest.raises(UsageError, match="num_clusters"):
        lteval.rank.run_features(h5, dlsa={"num_clusters": "many"})
    with pytest.raises(UsageError, match="num_clusters = 0 must be >= 1"):
        lteval.rank.run_features(h5, dlsa=DLSAConfig(num_clusters=0))


def test_a_loaded_dataset_refuses_the_settings_it_was_loaded_with(packaged_assets):
    from lteval.data import load_dataset

    ds = load_dataset("mnist5k-lt", seed=0)
    for name, value in [("data_root", "x"), ("eval_per_class", 5), ("val_fraction", 0.2)]:
        with pytest.raises(UsageError, match=f"{name} is for loading a dataset by name"):
            lteval.rank.run(["timm:test_resnet"], dataset=ds, **{name: value})


def test_a_dlsa_config_is_used_as_it_is(h5):
    cfg = DLSAConfig(num_clusters=6, num_stages=1, flow_epochs=2, flow_seeds=1, hidden=8)
    result = lteval.rank.run_features(h5, heads=["ncm"], bootstrap=0, dlsa=cfg, progress=False)
    used = result.ok[0].row["dlsa_settings"]
    assert (used["num_clusters"], used["num_stages"], used["flow_seeds"]) == (6, 1, 1)
    assert result.run["command"] is None  # provenance is a program's, not the library's
    import dataclasses

    cuda = dataclasses.replace(cfg, device="cuda")  # the run's device trains the flows
    assert lteval.rank.run_features(
        h5, heads=["ncm"], bootstrap=0, dlsa=cuda, device="cpu", progress=False
    ).ok


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"by": "nope"}, "by='nope'"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"seed": 2**40}, r"seed must be <= 2\*\*32 - 1 = 4294967295"),
        ({"seed": 1.5}, "seed takes an integer"),
        ({"val_fraction": 0.9}, r"val_fraction must be in \(0, 0.5\]"),
        ({"bootstrap": 5}, "bootstrap=5 is too few"),
        ({"bootstrap": -1}, "bootstrap must be >= 0"),
        ({"imbalance_factor": 0.5}, "imbalance_factor must be >= 1"),
        ({"input_size": 8}, "input_size must be >= 16"),
        ({"runtime": RunOptions(device=torch.device("cpu"), num_workers=-2)}, "num_workers"),
        ({"feature_dir": "/no/such/folder"}, "feature_dir='/no/such/folder' is not a directory"),
    ],
)
def test_the_library_names_its_parameters_not_the_flags(h5, kwargs, named):
    """A Python caller is told about ``by``, never ``--by``; the command line, about
    ``--by`` (``run_main`` translates once); ranges are the library's own."""
    images = {"imbalance_factor", "input_size", "runtime"} & set(kwargs)
    with pytest.raises(ValueError, match=named) as caught:
        if images:  # the image case's own arguments
            lteval.rank.run(["timm:test_resnet"], **kwargs)
        else:
            lteval.rank.run_features(**{"feature_dir": h5, **kwargs})
    assert "--" not in str(caught.value)
    assert isinstance(caught.value, UsageError | FeatureFileError)


def test_the_command_line_names_the_flags(h5, tmp_path, capsys):
    from lteval.cli.rank import main

    assert main(["--features", str(h5), "--by", "nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error: --by nope is not a metric column" in err and "by=" not in err
    assert main(["--features", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert f"--features {tmp_path / 'none'} is not a directory" in capsys.readouterr().err


def test_an_undeclared_column_is_an_error_not_a_silent_extra(result, tmp_path):
    s = result.ok[0]
    s.row["sepparability"] = 0.5  # a misspelt column
    try:
        with pytest.raises(ValueError, match="sepparability.*not declared"):
            result.write(tmp_path / "out")
        assert not (tmp_path / "out").exists()  # nothing half-written
        with pytest.raises(ValueError, match="sepparability.*not declared"):
            result.table()  # the table holds schema columns only
    finally:
        del s.row["sepparability"]


def test_rows_are_typed_with_the_schemas_columns(result, tmp_path):
    """One frozen Row per backbone: its fields are the schema's columns, its state
    enums; the files write its columns in the order they were built."""
    import dataclasses

    from lteval.rank import Evidence, Row, Status
    from lteval.rank.schema import INTERVALS, ROW

    fields = {f.name for f in dataclasses.fields(Row)} - {"order"}
    assert fields == set(ROW) | INTERVALS
    rows = result.rows
    assert [r.backbone for r in rows] == list(result.table()["backbone"])
    top = rows[0]
    assert top.status is Status.OK and top.ok and top.rank == 1
    assert top.evidence in tuple(Evidence) and isinstance(top.separability, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        top.separability = 1.0
    assert list(top.to_dict()) == list(top) and "logme" in top
    assert "tied_with" in top and "separability_lo" in top  # the rows results.json holds
    assert top.to_dict()["status"] == "ok" and type(top.to_dict()["status"]) is str
    result.write(tmp_path / "out")
    written = json.loads((tmp_path / "out" / "results.json").read_text())["backbones"]
    assert list(written[0])[:3] == ["rank", "backbone", "status"]
    again = Row.of(written[0])
    assert again.status is Status.OK and again.to_dict() == written[0]
    with pytest.raises(ValueError, match="'done'"):
        Row.of({"backbone": "b", "status": "done"})


def test_report_headers_carry_the_schemas_meaning(result, tmp_path):
    from markupsafe import escape

    from lteval.rank.schema import ROW, STAGE
    from lteval.report import render_report

    result.write(tmp_path)
    html = render_report(tmp_path).read_text()
    assert f'<th title="{escape(ROW["dlsa_balanced"])}">dlsa_balanced</th>' in html
    assert f'<th title="{escape(STAGE["somers_d"])}">somers_d</th>' in html
