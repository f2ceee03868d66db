"""``--config FILE``: a YAML mapping of any program's options, checked at the boundary.

The file's values become defaults that command-line flags override. Each value is
checked against what its flag takes (a switch true/false, a repeatable option a list,
a typed option its type) before argparse sees it; ``lteval.cli.options`` then checks
the ranges.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lteval.cli.options import PATHS
from lteval.errors import UsageError, read_user_yaml, short
from lteval.fields import KIND


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that keeps each option's ``Action`` (the public value
    ``add_argument`` returns) in ``options`` (dest -> Action), for ``--config`` and
    for naming flags in messages; argparse's own lists are private."""

    def __init__(self, *args, **kwargs):
        if kwargs.get("parents"):
            raise TypeError("Parser keeps its options itself: add them, not parents=")
        self.options: dict[str, argparse.Action] = {}
        self.repeatable: set[str] = set()  # dests of action="append" options
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        return self._keep(super().add_argument(*args, **kwargs), kwargs)

    def add_argument_group(self, *args, **kwargs):
        group = super().add_argument_group(*args, **kwargs)
        add = group.add_argument
        group.add_argument = lambda *a, **k: self._keep(add(*a, **k), k)
        return group

    def add_mutually_exclusive_group(self, *args, **kwargs):
        raise TypeError("Parser does not see a mutually exclusive group's options")

    def _keep(self, action: argparse.Action, kwargs: dict) -> argparse.Action:
        self.options[action.dest] = action
        if kwargs.get("action") == "append":
            self.repeatable.add(action.dest)
        return action

    def flags(self) -> dict[str, str]:
        """{dest: its long flag} of every option (``data_root``: ``--data-root``)."""
        return {d: a.option_strings[-1] for d, a in self.options.items() if a.option_strings}


CONFIG_ONLY = {"dlsa"}
"""Keys a ``--config`` YAML may hold that are not command-line options: ``dlsa``
(a mapping of DLSA settings, see lteval.dlsa.DLSAConfig)."""


def parse_with_config(parser: Parser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; with ``--config FILE`` (YAML mapping of option names, dashes or
    underscores), the file's values become defaults that command-line flags override."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    dests = {d: a for d, a in parser.options.items() if d not in ("help", "config")}
    extra: dict = {}
    if known.config:
        values = read_config(known.config)
        for key, value in values.items():
            dest = key.replace("-", "_")
            if dest in CONFIG_ONLY:
                extra[dest] = value
                continue
            if dest not in dests:
                raise UsageError(
                    f"--config {known.config}: unknown option {key!r}; known: "
                    f"{sorted([*dests, *CONFIG_ONLY])}"
                )
            action = dests[dest]
            repeatable = dest in parser.repeatable
            value = _config_value(known.config, key, value, action, repeatable)
            if dest in PATHS and isinstance(value, str):
                value = os.path.expanduser(value)  # the shell expands ~ on a command line
            if isinstance(value, list) and not repeatable:
                value = ",".join(str(v) for v in value)
            if action.choices is not None and value not in action.choices:
                raise UsageError(
                    f"--config {known.config}: {key} = {short(value)}; choose one of "
                    f"{sorted(action.choices)}"
                )
            if action.type is not None and isinstance(value, str):
                try:
                    value = action.type(value)
                except (TypeError, ValueError):
                    kind = KIND.get(action.type, "a value")
                    raise UsageError(
                        f"--config {known.config}: {key} = {short(value)}; "
                        f"{action.option_strings[0]} takes {kind}"
                    ) from None
            extra[dest] = value
        parser.set_defaults(**{k: v for k, v in extra.items() if k not in CONFIG_ONLY})
    args = parser.parse_args(argv)
    for k in CONFIG_ONLY:
        setattr(args, k, extra.get(k))
    return args


def _config_value(path: str, key: str, value, action: argparse.Action, repeatable: bool):
    """``value`` of option ``key`` in a --config file, checked against what the flag
    takes: a switch takes true/false, a repeatable option a list (one string or, for
    ``weights``, a mapping NAME: PATH is accepted too)."""
    if action.nargs == 0:  # a switch (store_true / store_false)
        if not isinstance(value, bool):
            raise UsageError(
                f"--config {path}: {key} = {short(value)}; {action.option_strings[0]} is a "
                f"switch: write true or false (unquoted)"
            )
        return value
    if repeatable:
        if isinstance(value, str):
            value = [value]
        elif isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            value = [f"{k}={v}" for k, v in value.items()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(
                f"--config {path}: {key} = {short(value)}; give a list of strings "
                f"(e.g. {key}: [NAME=PATH])"
            )
        return value
    if isinstance(value, dict | list) and action.type is not None:
        raise UsageError(f"--config {path}: {key} = {short(value)}; give a single value")
    return value


def read_config(path: str) -> dict:
    """The mapping in a YAML config file (UsageError naming the file when it is not one)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--config {path}: no such file")
    data = read_user_yaml(p, "--config", UsageError) or {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {path} must hold a mapping of option: value")
    return data


def resolved_config(args: argparse.Namespace) -> dict:
    """Every option's final value (for the run folder's config.yaml)."""
    skip = {"argv", "config"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}
