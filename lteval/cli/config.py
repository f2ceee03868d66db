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
from lteval.errors import UsageError, read_user_text
from lteval.fields import KIND, short


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


class _Refused(Exception):
    """What a --config file holds that lteval refuses: ``what``, at ``line``."""

    def __init__(self, what: str, line: int):
        self.what, self.line = what, line


def _loader(yaml):
    """yaml's SafeLoader, except that it refuses (``_Refused``) a key given twice in
    one mapping (PyYAML keeps the last one in silence), a key that is a list or a
    mapping, and an alias (``*name``) of a list or mapping: nested aliases expand
    exponentially when read (a 600-byte "billion laughs" file)."""

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                node = self.anchors.get(event.anchor)
                if isinstance(node, yaml.CollectionNode):
                    raise _Refused(
                        f"an alias *{event.anchor} of a list or mapping (write it out)",
                        event.start_mark.line + 1,
                    )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                line = key_node.start_mark.line + 1
                if isinstance(key_node, yaml.CollectionNode):
                    raise _Refused("a key that is a list or mapping (keys are option names)", line)
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise _Refused(f"{short(key)} given twice (keep one)", line)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader


def read_config(path: str) -> dict:
    """The mapping in a YAML config file (UsageError naming the file when it is not one)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        data = yaml.load(read_user_text(p, "--config", UsageError), _loader(yaml)) or {}
    except _Refused as e:
        raise UsageError(f"--config {path}: line {e.line} holds {e.what}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"--config {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path} must hold a mapping of option: value")
    return data


def resolved_config(args: argparse.Namespace) -> dict:
    """Every option's final value (for the run folder's config.yaml)."""
    skip = {"argv", "config"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}
