"""lteval's user-facing errors. Each message names the bad input and the fix.

The command-line programs turn any ``LtevalError`` into one line on stderr and
exit status 2; anything else is a bug and keeps its traceback.

A message names the caller's parameters through ``arg(name[, value])``. A Python
caller reads them as parameters (``by='nope'``); inside ``speaking_flags(table)``,
which the command-line programs enter once, the same messages (in logs, results
rows and reports alike) read as flags (``--by nope``).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator, Mapping

_FLAGS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "lteval_flags", default=None
)
_SWITCH = "\x1d"  # the value of a switch: the flag alone
_MARK = re.compile("\x1f([A-Za-z_0-9]+)(?:\x1e([^\x1f]*)\x1e([^\x1f]*))?\x1f")


def arg(name: str, *value, cli: str | None = None) -> str:
    """How a message names parameter ``name`` (with its ``value``, if given):
    ``name`` / ``name=value!r`` for a Python caller, the flag (``--flag value``)
    under the command line (``cli``: the value as typed there, when it differs;
    True: the switch alone). Rendered when the error is shown (``render``)."""
    if not value:
        return f"\x1f{name}\x1f"
    if cli is None:
        cli = _SWITCH if value[0] is True else str(value[0]) or "''"
    return f"\x1f{name}\x1e{value[0]!r}\x1e{cli}\x1f"


def render(text: str) -> str:
    """``text`` with its ``arg`` markers written for the current reader."""
    flags = _FLAGS.get()

    def one(m: re.Match) -> str:
        name, py, cli = m.groups()
        if flags is None:
            return name if py is None else f"{name}={py}"
        flag = flags.get(name, "--" + name.replace("_", "-"))
        return flag if cli is None or cli == _SWITCH else f"{flag} {cli}"

    return _MARK.sub(one, text)


@contextlib.contextmanager
def speaking_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """Inside: messages name parameters by their flags (``flags``: parameter name ->
    flag; others become ``--name-with-dashes``). Entered once by ``run_main``."""
    token = _FLAGS.set(dict(flags))
    try:
        yield
    finally:
        _FLAGS.reset(token)


class LtevalError(Exception):
    """Base of every error caused by what the user gave."""

    def __str__(self) -> str:
        return render(super().__str__())


class UsageError(LtevalError, ValueError):
    """A bad option or option combination."""


class DatasetError(LtevalError, ValueError):
    """A dataset cannot be built from what the user gave (bad name, root, layout)."""


class BackboneError(LtevalError, ValueError):
    """A backbone name cannot be resolved (unknown family or architecture)."""


class FeatureFileError(LtevalError, ValueError):
    """A feature file is missing, malformed, or holds bad values."""


class CacheError(LtevalError, OSError):
    """The feature cache folder cannot be written (read-only, no permission, full)."""


_CHECKPOINT = "/path/to/checkpoint"


class WeightsNotFoundError(LtevalError, FileNotFoundError):
    """Pretrained weights for a backbone are in none of the places searched."""

    def __init__(self, name: str, searched: list[str], fetch_hint: str):
        self.name, self.searched = name, searched
        lines = "\n".join(f"  - {s}" for s in searched)
        super().__init__(
            f"pretrained weights for backbone {name!r} were not found locally. Searched:\n"
            f"{lines}\n"
            f"To fix: on a connected machine run\n    {fetch_hint}\n"
            f"and copy the cache here (or set HF_HOME / TORCH_HOME to it); or pass "
            f"{arg('weights', {name: _CHECKPOINT}, cli=repr(f'{name}={_CHECKPOINT}'))}; or pass "
            f"{arg('allow_random_init', True)} to run "
            f"with random weights (the ranking then only exercises the pipeline)."
        )


def read_user_text(path, what: str, error: type[LtevalError], fix: str = "give a text file") -> str:
    """The UTF-8 text of a file the user gave; ``error`` (one line naming ``what``
    and the path, then ``fix``) when it cannot be read or is not text."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except UnicodeDecodeError as e:
        raise error(
            f"{what} {path} is not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x}); {fix}"
        ) from None
    except OSError as e:
        raise error(f"{what} {path} cannot be read ({e.strerror or e})") from None


def read_user_json(path, what: str, error: type[LtevalError], fix: str = "give a JSON file"):
    """The JSON in a file the user gave; ``error`` naming it, then ``fix``, when it
    is not readable JSON text."""
    import json

    try:
        return json.loads(read_user_text(path, what, error, fix))
    except ValueError as e:
        raise error(f"{what} {path} is not valid JSON ({e}); {fix}") from None


def short(value, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, without building the whole
    repr of a large or deeply shared value (a YAML alias bomb prints as a few lines)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 6
    r.maxlevel = 3
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


MERGE = "tag:yaml.org,2002:merge"
"""The tag of a YAML merge key (``<<: *base``): it copies a mapping's keys one level
deep, so an alias there cannot nest exponentially."""


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
                merge = isinstance(index, yaml.ScalarNode) and index.tag == MERGE
                if isinstance(node, yaml.CollectionNode) and not merge:
                    raise _Refused(
                        f"an alias *{event.anchor} of a list or mapping (write it out)",
                        event.start_mark.line + 1,
                    )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == MERGE:  # "<<: *base": its keys may be overridden here
                    continue
                if isinstance(key_node, yaml.CollectionNode):
                    raise _Refused("a key that is a list or mapping (keys are option names)", line)
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise _Refused(f"{short(key)} given twice (keep one)", line)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader


def read_user_yaml(path, what: str, error: type[LtevalError]):
    """The YAML in a file the user gave, read with yaml's SafeLoader (no
    ``!!python`` tags) less what ``_loader`` refuses; ``error`` naming ``what``, the
    path and the line otherwise."""
    import yaml

    try:
        return yaml.load(read_user_text(path, what, error, "give a YAML file"), _loader(yaml))
    except _Refused as e:
        raise error(f"{what} {path}: line {e.line} holds {e.what}") from None
    except yaml.YAMLError as e:
        raise error(f"{what} {path} is not valid YAML: {short(str(e), 300)}") from None


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name when the
    message is empty (``str(KeyError())`` is ``''``)."""
    lines = [ln for ln in str(error).splitlines() if ln.strip()]
    return lines[0] if lines else type(error).__name__


class OutputError(LtevalError, OSError):
    """Output cannot be written where asked (disk full, read-only, a file in the way),
    or writing it would delete files lteval did not write. Keeps the operating
    system's ``errno`` / ``strerror`` / ``filename`` when it came from one."""

    def __init__(self, message: str, os_error: OSError | None = None):
        super().__init__(message)
        self.message = message
        if os_error is not None:
            self.errno, self.strerror = os_error.errno, os_error.strerror
            self.filename = os_error.filename

    def __str__(self) -> str:
        return render(self.message)


class RunFolderError(LtevalError, ValueError):
    """A run folder's results files are missing, damaged or from something else."""


class FeatureError(LtevalError, ValueError):
    """A backbone's features cannot be scored (constant, all zero, NaN or inf)."""
