"""Change the project file from the API (and the console), keeping what a person wrote.

Every change is made on the round-trip (ruamel) document, the WHOLE resulting document is
validated exactly as a project file is (`parse_project`), and only then is the file replaced
atomically; on a ProjectError nothing is written.

Re-emitting a whole YAML document changes more than the edit (ruamel re-wraps long flow
mappings, normalises some spacing), so the text written is a three-way merge: the lines the
edit changed (the re-emitted old document against the re-emitted new one) are applied to the
original text, and everything else keeps its bytes. The merge is checked by parsing it back;
should it ever differ from the edited document, the plain re-emitted document is written.

Items that keep their value keep their node, so their comments, quoting, anchors and aliases
stay. A node shared through an alias is never changed in place: that would silently change
every place that refers to it; the edited place gets its own copy instead.
"""

from __future__ import annotations

import copy
import difflib
import fcntl
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.comments import Comment, CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from audience.project import PROJECT_FILE, Project, ProjectError, parse_project

T = TypeVar("T")

# List sections of the project file and the fields that identify an item in each: a
# relationship's name is unique only among the relationships of its table.
SECTIONS: dict[str, tuple[str, ...]] = {
    "sources": ("name",),
    "relationships": ("table", "name"),
    "activities": ("name",),
    "measures": ("name",),
    "segments": ("name",),
    "exports": ("name",),
}

Key = str | int


class ItemNotFound(LookupError):
    """The item or path named does not exist in the project file."""


def project_path(project_file: Path | str) -> Path:
    path = Path(project_file)
    return path / PROJECT_FILE if path.is_dir() else path


def upsert(
    project_file: Path | str,
    section: str,
    item: dict[str, Any],
    key: Sequence[str] | None = None,
) -> str:
    """Replace the item of a list section with the same key (by default its name), or
    append it. Returns 'updated' or 'created'."""
    fields = _fields(section, key)
    if not isinstance(item, dict):
        raise ProjectError(project_path(project_file), [f"{section}: an item must be a mapping"])
    missing = [f for f in fields if not isinstance(item.get(f), str)]
    if missing:
        raise ProjectError(
            project_path(project_file),
            [f"{section}: the item needs {' and '.join(repr(f) for f in missing)}"],
        )
    wanted = tuple(item[f] for f in fields)

    def change(doc: CommentedMap) -> str:
        items = doc.get(section)
        if not isinstance(items, list):
            doc[section] = CommentedSeq()
            items = doc[section]
        _, shared = _census(doc)
        for i, existing in enumerate(items):
            if _identity(existing, fields) == wanted:
                items[i] = _assign(existing, item, shared)
                return "updated"
        items.append(_assign(None, item, shared))
        return "created"

    return _edit(project_file, change)


def delete(
    project_file: Path | str,
    section: str,
    name: str | Sequence[str],
    key: Sequence[str] | None = None,
) -> None:
    """Remove the item of a list section whose key is `name` (for relationships: the pair
    (table, name)). Raises ItemNotFound when there is none."""
    fields = _fields(section, key)
    wanted = (name,) if isinstance(name, str) else tuple(name)

    def change(doc: CommentedMap) -> None:
        items = doc.get(section)
        for i, existing in enumerate(items if isinstance(items, list) else []):
            if _identity(existing, fields) == wanted:
                del items[i]
                return
        raise ItemNotFound(f"{section}: no item {'/'.join(wanted)}")

    _edit(project_file, change)


def set_path(project_file: Path | str, path: Sequence[Key], value: Any) -> None:
    """Set the value at a config path, e.g. ["unify", "match", 0, "rules"]. Every step but
    the last must exist; the last may be a new key, or the next index of a list."""
    if not path:
        raise ValueError("set_path needs a path; use the section functions for whole sections")

    def change(doc: CommentedMap) -> None:
        _, shared = _census(doc)
        parent = _walk(doc, path[:-1], shared)
        last = path[-1]
        if isinstance(parent, dict) and isinstance(last, str):
            parent[last] = _assign(parent.get(last), value, shared)
        elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
            parent[last] = _assign(parent[last], value, shared)
        elif isinstance(parent, list) and last == len(parent):
            parent.append(_assign(None, value, shared))
        else:
            raise ItemNotFound(f"no {_format(path)} in the project file")

    _edit(project_file, change)


def remove_path(project_file: Path | str, path: Sequence[Key]) -> None:
    """Remove the key (or list item) at a config path, e.g. ["schedule"]; raises
    ItemNotFound when it is not there."""
    if not path:
        raise ValueError("remove_path needs a path")

    def change(doc: CommentedMap) -> None:
        _, shared = _census(doc)
        parent = _walk(doc, path[:-1], shared)
        last = path[-1]
        in_map = isinstance(parent, dict) and isinstance(last, str) and last in parent
        in_list = isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent)
        if not (in_map or in_list):
            raise ItemNotFound(f"no {_format(path)} in the project file")
        del parent[last]

    _edit(project_file, change)


def get_path(project_file: Path | str, path: Sequence[Key] = ()) -> Any:
    """The value at a config path as plain data, as written (${VARS} not replaced)."""
    node = _load(project_path(project_file))[1]
    for i, step in enumerate(path):
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            raise ItemNotFound(f"no {_format(path[: i + 1])} in the project file") from None
    return _plain(node)


# --- applying a change -------------------------------------------------------------------


def _edit(project_file: Path | str, change: Callable[[CommentedMap], T]) -> T:
    path = project_path(project_file)
    with _locked(path.parent):
        text, doc = _load(path)
        if not isinstance(doc, dict):
            raise ProjectError(path, ["the project file must be a mapping (name:, sources:, ...)"])
        style = _Style.of(text)
        # Rendered from a copy: ruamel's emitter changes the comments it writes, so the
        # document to change must not have been rendered.
        before = style.render(copy.deepcopy(doc))
        sites, shared = _census(doc)
        result = change(doc)
        try:
            json.dumps(_plain(doc), ensure_ascii=False, default=str).encode("utf-8")
        except UnicodeEncodeError:
            raise ProjectError(path, ["the change holds text that is not valid Unicode"]) from None
        if style.json_indent is not None:
            try:  # a JSON project file cannot hold NaN or Infinity
                json.dumps(_plain(doc), allow_nan=False, default=str)
            except ValueError:
                raise ProjectError(path, ["JSON has no NaN or Infinity"]) from None
        _validate(doc, path)
        _settle_aliases(doc, sites, shared)
        after = style.render(doc)
        out = _merge(text, before, after)
        if not _faithful(out, doc):
            out = after  # the merge lost something: write the plain rendering instead
            if not _faithful(out, doc):
                raise RuntimeError(
                    f"cannot write this change to {path} without changing its meaning; "
                    "please make it by hand"
                )
        _write_atomic(path, out)
    return result


def _settle_aliases(doc: Any, sites: dict[int, tuple[Key, ...]], shared: dict[int, Any]) -> None:
    """A shared node whose first place was given its own copy is now written out in full at
    the next place that refers to it (often a one-line flow mapping); the comments that
    described the first place stay there, with the copy."""
    now, _ = _census(doc)
    for i, node in shared.items():
        if i in now and now[i] != sites[i]:
            _each_own(node, shared, _forget_comments)


def _faithful(text: str, doc: Any) -> bool:
    try:
        return _canon(_yaml().load(text)) == _canon(doc)
    except YAMLError:
        return False


def _validate(doc: Any, path: Path) -> Project:
    return parse_project(doc, path, path.parent)


def _load(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(path, [f"project file not found: {path}"]) from None
    try:
        return text, _yaml().load(text)
    except YAMLError as e:
        raise ProjectError(path, [f"not valid YAML: {e}"]) from None


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Edits of one project queue behind each other, in this process and in others (the
    API's workers): each reads the file only after the previous one has replaced it."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)  # keep who may read it
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- the document ------------------------------------------------------------------------


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    # Never fold a long expression over lines; the merge keeps long lines a person wrapped.
    yaml.width = 4096
    yaml.brace_single_entry_mapping_in_flow_sequence = True
    return yaml


class _Style:
    """How the file is written: JSON (tests and tools write it), or YAML with its indents."""

    def __init__(self, json_indent: int | None, mapping: int, sequence: int, offset: int):
        self.json_indent = json_indent
        self.mapping, self.sequence, self.offset = mapping, sequence, offset

    @classmethod
    def of(cls, text: str) -> _Style:
        if text.lstrip().startswith("{"):
            second = text.splitlines()[1:2]
            indent = len(second[0]) - len(second[0].lstrip()) if second else 0
            return cls(indent, 2, 2, 0)
        mapping, sequence, offset = _guess_indents(text)
        return cls(None, mapping, sequence, offset)

    def render(self, doc: Any) -> str:
        if self.json_indent is not None:
            text = json.dumps(_plain(doc), indent=self.json_indent, ensure_ascii=False, default=str)
            return text + "\n"
        yaml = _yaml()
        yaml.indent(mapping=self.mapping, sequence=self.sequence, offset=self.offset)
        out = io.StringIO()
        yaml.dump(doc, out)
        return out.getvalue()


_LINE = re.compile(r"^( *)(- +)?(\S.*)$")


def _guess_indents(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) in ruamel's terms, from the most common steps between a
    `key:` line and the line below it: a deeper `key:` gives the mapping indent, a `- ` the
    dash offset and the sequence indent (offset + the dash and its spaces)."""
    mappings: Counter[int] = Counter()
    sequences: Counter[tuple[int, int]] = Counter()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for line, below in zip(lines, lines[1:], strict=False):
        m, b = _LINE.match(line), _LINE.match(below)
        if not m or not b or not line.rstrip().endswith(":") or m.group(2):
            continue
        step = len(b.group(1)) - len(m.group(1))
        if b.group(2):
            if step >= 0:
                sequences[(step + len(b.group(2)), step)] += 1
        elif step > 0:
            mappings[step] += 1
    mapping = mappings.most_common(1)[0][0] if mappings else 2
    sequence, offset = sequences.most_common(1)[0][0] if sequences else (mapping, 0)
    return mapping, max(sequence, offset + 2), offset


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)  # quoted scalars are str subclasses; compare them as text
    return value


def _canon(value: Any) -> str:
    """Equal for equal data of equal types (unlike ==, for which True == 1 == 1.0)."""
    return json.dumps(_plain(value), default=str)


def _census(doc: Any) -> tuple[dict[int, tuple[Key, ...]], dict[int, Any]]:
    """Where each container first appears (the path, in the order the file is written), and
    the containers that appear more than once (through YAML aliases), by id."""
    first: dict[int, tuple[Key, ...]] = {}
    shared: dict[int, Any] = {}

    def visit(node: Any, path: tuple[Key, ...]) -> None:
        if not isinstance(node, dict | list):
            return
        if id(node) in first:
            shared[id(node)] = node
            return
        first[id(node)] = path
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            visit(child, (*path, key))

    visit(doc, ())
    return first, shared


def _own_copy(node: Any, shared: dict[int, Any]) -> Any:
    """A copy of a shared node (comments and styles kept) for one place to change; the
    aliased nodes inside it stay shared."""
    memo: dict[int, Any] = {i: n for i, n in shared.items() if n is not node}
    out = copy.deepcopy(node, memo)
    _each_own(out, shared, lambda n: n.yaml_set_anchor(None) if n.anchor.value else None)
    return out


def _each_own(node: Any, shared: dict[int, Any], do: Callable[[Any], Any]) -> None:
    """Call `do` on the node and the containers below it that are not shared."""
    if isinstance(node, dict | list) and hasattr(node, "ca"):
        do(node)
        for child in node.values() if isinstance(node, dict) else node:
            if id(child) not in shared:
                _each_own(child, shared, do)


def _forget_comments(node: Any) -> None:
    setattr(node, Comment.attrib, Comment())


def _assign(old: Any, new: Any, shared: dict[int, Any]) -> Any:
    """The node to store for `new` where `old` was: `old` itself, updated in place where
    the two have the same shape, so that comments and formatting on what stays are kept.
    A shared `old` is copied first: the other places that refer to it keep its value."""
    if old is not None and _canon(old) == _canon(new):
        return old
    if isinstance(old, dict | list) and id(old) in shared:
        old = _own_copy(old, shared)
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [k for k in old if k not in new]:
            del old[k]
        for k, v in new.items():
            old[k] = _assign(old.get(k), v, shared)
        return old
    if isinstance(old, list) and isinstance(new, list):
        del old[len(new) :]
        for i, v in enumerate(new):
            if i < len(old):
                old[i] = _assign(old[i], v, shared)
            else:
                old.append(_assign(None, v, shared))
        return old
    if isinstance(old, str) and isinstance(new, str) and type(old) is not str:
        return type(old)(new)  # keep the quoting a person chose
    return _fresh(new)


def _fresh(value: Any) -> Any:
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _fresh(v)
        return out
    if isinstance(value, list):
        return CommentedSeq(_fresh(v) for v in value)
    return value


def _walk(doc: Any, path: Sequence[Key], shared: dict[int, Any]) -> Any:
    """The node at `path`. Shared nodes on the way are replaced by their own copies: a
    change below an alias must not change the other places that refer to the same node."""
    node = doc
    for i, step in enumerate(path):
        try:
            child = node[step]
        except (KeyError, IndexError, TypeError):
            raise ItemNotFound(f"no {_format(path[: i + 1])} in the project file") from None
        if not isinstance(child, dict | list):
            raise ItemNotFound(f"{_format(path[: i + 1])} is a value, not a section")
        if id(child) in shared:
            child = _own_copy(child, shared)
            node[step] = child
        node = child
    return node


def _identity(item: Any, fields: tuple[str, ...]) -> tuple[Any, ...] | None:
    if not isinstance(item, dict):
        return None
    return tuple(item.get(f) for f in fields)


def _fields(section: str, key: Sequence[str] | None) -> tuple[str, ...]:
    if key is not None:
        return (key,) if isinstance(key, str) else tuple(key)
    if section not in SECTIONS:
        raise ValueError(f"'{section}' is not a list section; sections are {', '.join(SECTIONS)}")
    return SECTIONS[section]


def _format(path: Sequence[Key]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


# --- the three-way merge -----------------------------------------------------------------


def _is_filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _merge(original: str, before: str, after: str) -> str:
    """`original` with the changes from `before` to `after` (both renderings by us).

    Lines unchanged in both are anchors; between anchors, a region the edit did not touch
    keeps the original's text, and a region it touched takes the new rendering's. Comment and
    blank lines at the end of a removed region stay (ruamel hangs the comment above an item
    on the item before it) while the comments right above removed lines go with them, and
    inserted lines go above the comments that introduce what follows them.
    """
    o, b, n = (s.splitlines(keepends=True) for s in (original, before, after))
    to_o, to_n = _matches(b, o), _matches(b, n)
    out: list[str] = []
    i = j = k = 0
    for x in range(len(b) + 1):
        if x < len(b) and not (x in to_o and x in to_n and to_o[x] >= j and to_n[x] >= k):
            continue
        jx, kx = (to_o[x], to_n[x]) if x < len(b) else (len(o), len(n))
        chunk_b, chunk_o, chunk_n = b[i:x], o[j:jx], n[k:kx]
        if chunk_n == chunk_b:
            out += chunk_o  # untouched by the edit: the original's bytes
        elif not chunk_b:
            at = len(out)
            while at > 0 and _is_filler(out[at - 1]):
                at -= 1
            out[at:at] = chunk_n
        else:  # touched by the edit (and perhaps reformatted): the new rendering wins
            if not chunk_n:
                _drop_leading_comments(out, chunk_o)
            tail = _filler_tail(chunk_o)
            out += chunk_n
            if tail and _filler_tail(chunk_n) != tail:
                out += tail
        if x < len(b):
            out.append(o[jx])
        i, j, k = x + 1, jx + 1, kx + 1
    return "".join(out)


def _drop_leading_comments(out: list[str], removed: list[str]) -> None:
    """The comment lines right above removed lines, indented as they are, described them."""
    first = next((ln for ln in removed if not _is_filler(ln)), None)
    if first is None:
        return
    indent = len(first) - len(first.lstrip(" "))
    while out and out[-1].strip().startswith("#"):
        if len(out[-1]) - len(out[-1].lstrip(" ")) != indent:
            break
        out.pop()


def _filler_tail(lines: list[str]) -> list[str]:
    at = len(lines)
    while at > 0 and _is_filler(lines[at - 1]):
        at -= 1
    return lines[at:]


def _matches(a: list[str], b: list[str]) -> dict[int, int]:
    """Line i of a -> line j of b, for the lines the two have in common (in order)."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    out: dict[int, int] = {}
    for block in matcher.get_matching_blocks():
        for d in range(block.size):
            out[block.a + d] = block.b + d
    return out
