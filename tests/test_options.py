"""Bad numeric options, from the command line or a --config file: one line, exit 2,
nothing written, before any data is read."""

from __future__ import annotations

import pytest

from lteval.cli.rank import main as rank_main


@pytest.mark.parametrize(
    ("flags", "config", "message"),
    [
        (["--eval-per-class", "0"], None, "--eval-per-class must be >= 1"),
        (["--val-fraction", "1.5"], None, "--val-fraction must be in (0, 0.5]"),
        (["--val-fraction", "-0.1"], None, "--val-fraction must be in (0, 0.5]"),
        (["--val-fraction", "0"], None, "--val-fraction must be in (0, 0.5]"),
        (["--imbalance-factor", "0"], None, "--imbalance-factor must be >= 1"),
        (["--imbalance-factor", "-5"], None, "--imbalance-factor must be >= 1"),
        (["--imbalance-factor", "nan"], None, "--imbalance-factor takes a finite number"),
        (["--seed", "-1"], None, "--seed must be >= 0"),
        (["--batch-size", "0"], None, "--batch-size must be >= 1"),
        (["--workers", "-2"], None, "--workers must be >= 0"),
        (["--input-size", "8"], None, "--input-size must be >= 16"),
        (["--bootstrap", "-1"], None, "--bootstrap must be >= 0"),
        ([], "bootstrap: 1e3", "bootstrap = '1e3'; --bootstrap takes an integer"),
        ([], "bootstrap: 50.7", "--bootstrap takes an integer"),
        ([], "bootstrap: true", "--bootstrap takes an integer"),
        ([], "seed: 1.5", "--seed takes an integer"),
        ([], "val_fraction: half", "--val-fraction takes a number"),
        ([], 'allow_random_init: "no"', "--allow-random-init is a switch: write true or false"),
        ([], "quiet: 1", "--quiet is a switch"),
        # one string is one item, not a list of characters
        ([], "weights: timm:resnet18=x.pth", "--weights names ['timm:resnet18'], which are not"),
        (
            [],
            "weights:\n  timm:vit_tiny: x.pth",
            "--weights names ['timm:vit_tiny'], which are not",
        ),
        ([], "weights: 3", "weights = 3; give a list of strings"),
        ([], "seed: [1, 2]", "seed = [1, 2]; give a single value"),
        ([], "dlsa: {num_clusters: abc}", "'dlsa' in --config: num_clusters = 'abc' takes an int"),
        ([], "dlsa: {flow_autocast: bf16}", "flow_autocast = 'bf16'; choose one of 'auto'"),
        ([], "dlsa: {classifier: {sampling: balanced}}", "sampling = 'balanced'; choose one of"),
        ([], "dlsa: {rho: '0.3'}", "rho = '0.3' takes a number"),
        (["--lock-timeout", "nan"], None, "--lock-timeout takes a finite number"),
        (["--eval-per-class", "5000"], None, "leaves no training data"),
        (["--heads", "none", "--by", "ce_balanced"], None, "which --heads 'none' does not run"),
        (["--heads", "ncm", "--by", "lws_few"], None, "add 'lws' to --heads"),
        (["--backbones", "timm:resnet18.bogus_tag"], None, "no pretrained tag 'bogus_tag'"),
    ],
)
def test_bad_numeric_options(flags, config, message, tmp_path, capsys):
    args = ["--dataset", "digits-lt", "--backbones", "random:timm:test_resnet"]
    if config:
        (tmp_path / "c.yaml").write_text(config + "\n")
        args += ["--config", str(tmp_path / "c.yaml")]
    out = tmp_path / "run"
    assert rank_main([*args, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_out_naming_a_file_fails_before_any_work(tmp_path, capsys):
    target = tmp_path / "report.html"
    target.write_text("keep me")
    args = ["--dataset", "digits-lt", "--backbones", "random:timm:test_resnet"]
    assert rank_main([*args, "--out", str(target)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert target.read_text() == "keep me"
