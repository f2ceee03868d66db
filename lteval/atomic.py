"""Atomic writes: a reader sees the old file (or folder) or the new one, never half;
and a folder lteval replaces whole never takes a user's file with it.

Every file lteval writes goes through ``write_text`` / ``writing``; every folder it
writes as one result (a rank report, the validation study) through ``folder``. The
temporary names come from ``tempfile`` next to the target, so two writers never
share one, and the final step is a rename on the same filesystem.

A folder written by ``folder`` holds a manifest (``MANIFEST``: each file's path and
sha256). ``foreign`` lists what in a folder is not in its manifest, or changed
since: a user's notes, data, a cache, an edited results file. ``folder`` refuses to
replace a folder with anything foreign in it, checked again at the swap itself.

Writing errors of the operating system (disk full, read-only, a file where a folder
should be) become ``OutputError``: one line naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from lteval.errors import OutputError, arg

MANIFEST = ".lteval-manifest.json"
"""The file in every folder ``folder`` writes: what lteval wrote there."""

WRITE_ERRNOS = {
    errno.ENOSPC: "the disk is full: free space, or write elsewhere",
    errno.EDQUOT: "the disk quota is exhausted: free space, or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: write elsewhere, or fix the permissions",
    errno.EPERM: "permission denied: write elsewhere, or fix the permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder: name another path",
    errno.EISDIR: "the path is a folder: name a file",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}
"""The operating-system errors that are about where output goes, with the fix."""


def output_error(e: OSError, path: str | Path) -> OutputError | None:
    """``OutputError`` for an OSError about writing (``WRITE_ERRNOS``), else None."""
    fix = WRITE_ERRNOS.get(e.errno)
    if fix is None:
        return None
    where = e.filename or path
    return OutputError(f"cannot write {where}: {fix}", e)


@contextlib.contextmanager
def _as_output_error(path: str | Path) -> Iterator[None]:
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        err = output_error(e, path)
        if err is None:
            raise
        raise err from e


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def writing(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it
    replaces ``path``, otherwise it is removed. ``suffix`` keeps writers that look at
    the extension happy (``.png`` for matplotlib, ``.npz`` for numpy)."""
    path = Path(path)
    with _as_output_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent
        )
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would make it, not mkstemp's 0600
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with writing(path) as tmp:
        tmp.write_text(text)


def check_writable_dir(path: str | Path, what: str) -> None:
    """OutputError, before any work, unless folder ``path`` exists and is writable or
    can be created: ``what`` names it in the message (e.g. "--export-h5")."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is an existing file; name a folder")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise OutputError(f"{what} {path} lies under the file {parent}; name another folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: {parent} is not writable; name another folder")


def file_sha256(path: str | Path) -> str:
    """The sha256 (64 hex digits) of a file's bytes: lteval's one file hash (the
    manifests, the feature cache's checksums, packaged assets, weights ids)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_manifest(root: str | Path, names: Iterable[str] | None = None) -> None:
    """Record files of ``root`` in its manifest: ``names`` (paths relative to it)
    added to or updated in the existing manifest, or (None) every file, replacing
    it."""
    root = Path(root)
    files = _manifest_files(root) if names is not None else {}
    if files is None:  # never rewrite a manifest lteval cannot read: it may be the user's
        raise OutputError(
            f"{root / MANIFEST} is not a manifest lteval can read; move it away, or name "
            "another folder"
        )
    todo = (
        names
        if names is not None
        else [
            Path(d, f).relative_to(root).as_posix()
            for d, _, fs in os.walk(root)
            for f in fs
            if Path(d, f).is_file() and not Path(d, f).is_symlink() and f != MANIFEST
        ]
    )
    for n in todo:
        files[n] = file_sha256(root / n)
    text = json.dumps({"written_by": "lteval", "files": dict(sorted(files.items()))}, indent=1)
    write_text(root / MANIFEST, text + "\n")


def _manifest_files(root: Path) -> dict[str, str] | None:
    """The manifest's {path: sha256}; {} without a manifest; None when it is damaged."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text())["files"]
        if isinstance(files, dict) and all(isinstance(v, str) for v in files.values()):
            return files
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def foreign(root: str | Path) -> list[str]:
    """What in folder ``root`` lteval did not write, or changed since: paths relative
    to ``root`` ("notes.txt", "mydata/", "results.csv (changed since lteval wrote
    it)"), empty when ``root`` holds only files its manifest lists or does not
    exist. A foreign folder is named once, not with each file in it. Without a
    readable manifest every entry is foreign (lteval cannot tell its files from
    the user's).
    """
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        return []
    state = _manifest_files(root)
    files = state or {}
    readable = state is not None and (root / MANIFEST).is_file()
    ours = {p.as_posix() for n in files for p in Path(n).parents if str(p) != "."}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for d in sorted(dirnames):
            name = (here / d).relative_to(root).as_posix()
            if (here / d).is_symlink():
                out.append(f"{name} (a link)")
            elif name not in ours:
                out.append(name + "/")
        dirnames[:] = [d for d in dirnames if (here / d).relative_to(root).as_posix() in ours]
        for f in sorted(filenames):
            p = here / f
            name = p.relative_to(root).as_posix()
            if name == MANIFEST and readable:
                continue
            if _our_temporary(name, files):  # a report being written there right now
                continue
            if p.is_symlink():
                out.append(f"{name} (a link)")
            elif name not in files:
                out.append(name)
            elif file_sha256(p) != files[name]:
                out.append(f"{name} (changed since lteval wrote it)")
    return sorted(out)


def _our_temporary(name: str, files: dict[str, str]) -> bool:
    """True when ``name`` is exactly the temporary file ``writing`` makes while it
    replaces a file the manifest lists (``.index.html.<8 random>.tmp`` beside
    ``index.html``; ``mkstemp``'s random part, then ``writing``'s suffix)."""
    import re

    head, _, base = name.rpartition("/")
    for n in files:
        parent, _, listed = n.rpartition("/")
        if parent == head and re.fullmatch(
            rf"\.{re.escape(listed)}\.[a-z0-9_]{{8}}(\.[a-z0-9]+)?\.tmp", base
        ):
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's, or no pid
        return True
    return True


def _machine() -> str:
    """This machine and pid namespace, as a temporary folder's name records them: a
    pid means the same process only there (two containers may share a host name)."""
    import socket

    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return f"{socket.gethostname()}~{ns}"


def _leftovers(target: Path) -> None:
    """Clean up after an earlier ``folder`` on ``target`` whose process was killed
    (SIGKILL, a power cut) on this machine, in this pid namespace: its temporary
    folder is removed; the old folder it had renamed away is put back when ``target``
    is missing, removed when it holds only what lteval wrote, and otherwise kept and
    named. Each step is logged. A leftover of a live process, or of another machine,
    is left alone."""
    import glob
    import logging
    import re

    here = _machine()
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(\d+)@(.+)-[^-]+$")
    log = logging.getLogger(__name__)
    for p in sorted(target.parent.glob(glob.escape(f".{target.name}.") + "*@*")):
        m = pattern.match(p.name)
        if not m or m.group(3) != here or _pid_alive(int(m.group(2))) or not p.is_dir():
            continue
        try:
            if m.group(1) == "old" and not target.exists():
                os.replace(p, target)
                log.warning(
                    f"{target}: put back the previous folder, left as {p.name} by a run "
                    "that was killed while replacing it"
                )
            elif m.group(1) == "old" and (found := foreign(p)):
                log.warning(
                    f"{target}: kept {p.name}, left by a run that was killed; it holds "
                    f"files lteval did not write ({', '.join(found[:3])}): move them out"
                )
            else:
                shutil.rmtree(p)
                log.warning(f"{target}: removed {p.name}, left by a run that was killed")
        except FileNotFoundError:  # another run cleaned it first
            continue


def _tag(kind: str) -> str:
    """The part of a temporary folder's name that says whose it is."""
    return f"{kind}-{os.getpid()}@{_machine()}-"


def _same(path: Path, want: str | None) -> bool:
    """True when ``path`` is a file whose sha256 is ``want`` (None: never)."""
    return want is not None and path.is_file() and file_sha256(path) == want


def unchanged(root: str | Path, name: str) -> bool:
    """True when file ``name`` of ``root`` is as lteval wrote it (in the manifest,
    same sha256)."""
    return _same(Path(root) / name, (_manifest_files(Path(root)) or {}).get(name))


def refusal(target: Path, found: list[str], what: str | None = None, would: bool = False) -> str:
    """The one-line message for a folder that holds ``found`` foreign entries
    (``what`` names the folder's parameter; default ``out``)."""
    what = arg("out") if what is None else what
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    state = _manifest_files(Path(target))
    why = (
        f"its {MANIFEST} is damaged, so lteval cannot tell its files from yours"
        if state is None
        else f"it has no {MANIFEST} (the list of what lteval wrote there)"
        if not (Path(target) / MANIFEST).is_file()
        else "lteval did not write them, or they changed since"
    )
    verb = "would replace" if would else "replaces"
    return (
        f"{what} {target} holds {shown}, and {why}; the run {verb} the whole folder, so "
        f"it stops rather than delete them: move them out, or name a new {what}"
    )


def check_overwrite(root: str | Path, names: Iterable[str], what: str) -> None:
    """OutputError unless each of ``names`` (files lteval is about to rewrite in
    ``root``) is absent or as lteval wrote it: a file the user wrote or edited there
    is never overwritten."""
    root = Path(root)
    files = _manifest_files(root)
    if files is None:
        raise OutputError(
            f"{what} {root} holds a {MANIFEST} that lteval cannot read (not its JSON), so "
            "lteval cannot tell its files from yours there; move it away, or name another "
            "folder"
        )
    mine = [n for n in names if (root / n).exists() and not _same(root / n, files.get(n))]
    if mine:
        raise OutputError(
            f"{what} {root} holds {', '.join(mine[:5])}, which lteval did not write or which "
            f"changed since (see {MANIFEST}); move them away, or name another folder"
        )


def _free_sibling(target: Path, tag: str) -> Path:
    for i in range(1, 1000):
        p = target.with_name(f"{target.name}.{tag}" + (f"-{i}" if i > 1 else ""))
        if not p.exists():
            return p
    raise OutputError(f"no free name beside {target} for the new folder")


@contextlib.contextmanager
def folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; when the block ends without
    error its manifest is written and it takes ``target``'s place, otherwise it is
    removed and ``target`` is untouched.

    An existing ``target`` is replaced only when it holds nothing ``foreign``. That is
    checked on the old folder after it is renamed away, so nothing written into it
    during the run is lost: if anything foreign is found, the old folder is put back,
    the new one is kept beside it as ``<target>.new`` and ``OutputError`` says so.
    The swap is renames; if it is interrupted the old folder is renamed back.
    """
    target = Path(target).absolute()
    if target.is_symlink():
        raise OutputError(f"{target} is a link; name the folder it points to, or a new one")
    with _as_output_error(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        _leftovers(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_tag('tmp')}", dir=target.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # as mkdir would make it, not mkdtemp's 0700
    old = None
    try:
        with _as_output_error(target):
            yield tmp
            write_manifest(tmp)
        try:
            if target.exists():
                old = Path(
                    tempfile.mkdtemp(prefix=f".{target.name}.{_tag('old')}", dir=target.parent)
                )
                os.replace(target, old)  # the empty placeholder is replaced
                found = foreign(old)
                if found:
                    os.replace(old, target)
                    old = None
                    kept = _free_sibling(target, "new")
                    os.replace(tmp, kept)
                    raise OutputError(
                        refusal(target, found, would=True) + f" (this run's folder is "
                        f"kept as {kept})"
                    )
            os.replace(tmp, target)
        except BaseException:
            if old is not None and not target.exists():
                os.replace(old, target)  # put the old folder back
                old = None
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
