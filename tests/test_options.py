"""Bad numeric options, from the command line or a --config file: one line, exit 2,
nothing written, before any data is read."""

from __future__ import annotations

import numpy as np
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


def test_messages_never_show_raw_parameter_markers():
    """arg() markers are rendered wherever a message is shown: str() of a library
    error, and the same message inside the command line's flag table."""
    from lteval.data import make_long_tailed_splits
    from lteval.errors import LtevalError, arg, render, speaking_flags

    labels = np.repeat(np.arange(3), [50, 10, 2])
    with pytest.raises(LtevalError) as e:
        make_long_tailed_splits(labels, imbalance_factor=None, eval_per_class=5, seed=0)
    assert "eval_per_class=5" in str(e.value) and not set(str(e.value)) & set("\x1d\x1e\x1f")
    with speaking_flags({}):
        assert "--eval-per-class 5" in str(e.value)
        assert render(arg("by", "")) == "--by ''" and render(arg("quiet", True)) == "--quiet"
    assert render(arg("by", "")) == "by=''"


@pytest.mark.parametrize(
    "values, ok",
    [
        ({"seed": np.int64(3), "val_fraction": np.float32(0.25)}, True),
        ({"seed": np.bool_(True)}, False),
        ({"seed": True}, False),
        ({"val_fraction": float("nan")}, False),
        ({"chunk_size": 0}, False),
    ],
)
def test_constraints_take_numpy_numbers_and_refuse_bools(values, ok):
    from lteval.constraints import check_params
    from lteval.errors import UsageError

    if ok:
        check_params(**values)
    else:
        with pytest.raises(UsageError, match=next(iter(values))):
            check_params(**values)


def test_every_option_of_every_program_is_known_to_config():
    """Parser records every option add_argument made (groups included), so --config
    can take each one; repeatable ones are known by their action."""
    import importlib

    for prog in ("rank", "extract", "validate", "compare", "report"):
        parser = importlib.import_module(f"lteval.cli.{prog}").build_parser()
        shown = {word.strip("[],") for word in parser.format_usage().split()}
        flags = {f for a in parser.options.values() for f in a.option_strings}
        assert {o for o in shown if o.startswith("--")} <= flags, prog
    rank = importlib.import_module("lteval.cli.rank").build_parser()
    assert rank.repeatable == {"weights"}
