"""Checks on the committed graph: breaking changes across git history, client operations.

The graph is a contract with frontends. Every commit that changed a file in schema/ is
compared with its parent (and the working tree with HEAD); a breaking change — a field,
argument, type or enum value removed or retyped, an argument made required... — fails
unless schema/breaking-changes.yaml acknowledges it. Walking the whole history, rather
than diffing against one base, holds however many commits a push brings and whatever
CI knows about the previous main.

    python -m subgraphs breaking-changes               the whole history and the working tree
    python -m subgraphs breaking-changes --base REV    only REV against the working tree
    python -m subgraphs check-operations               schema/operations/ against the supergraph
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from graphql import (
    DirectiveDefinitionNode,
    DirectiveNode,
    DocumentNode,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    Source,
    TypeDefinitionNode,
    TypeExtensionNode,
    Visitor,
    build_ast_schema,
    find_breaking_changes,
    find_dangerous_changes,
    parse,
    specified_directives,
    validate,
    visit,
)
from graphql.language import REMOVE

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = "schema"
SUPERGRAPH = f"{SCHEMA_DIR}/supergraph.graphql"
ACKNOWLEDGED = f"{SCHEMA_DIR}/breaking-changes.yaml"
OPERATIONS_DIR = f"{SCHEMA_DIR}/operations"
WORKING_TREE = "working tree"

BUILT_IN_DIRECTIVES = {directive.name for directive in specified_directives}


# --- The schemas to compare -------------------------------------------------------------


def api_schema(supergraph_sdl: str) -> GraphQLSchema:
    """The schema clients see through the router, built from the composed supergraph.

    Drops what only the router reads: the join/link machinery (types namespaced like
    `join__Graph`), every directive but GraphQL's built-in ones, and elements marked
    @inaccessible.
    """
    return build_ast_schema(visit(parse(supergraph_sdl), _ApiSchemaFilter()))


class _ApiSchemaFilter(Visitor):
    def enter(self, node: Node, *_args: object) -> object:
        directives = getattr(node, "directives", None) or ()
        if any(directive.name.value == "inaccessible" for directive in directives):
            return REMOVE
        if isinstance(node, TypeDefinitionNode | TypeExtensionNode):
            return REMOVE if _is_namespaced(node.name.value) else None
        if isinstance(node, DirectiveDefinitionNode | DirectiveNode):
            return None if node.name.value in BUILT_IN_DIRECTIVES else REMOVE
        return None


def _is_namespaced(name: str) -> bool:
    # `join__Graph`, `link__Purpose`, `requiresScopes__Scope`: the types a federation spec
    # brings. Introspection's own types start with `__` and never appear in SDL.
    return "__" in name[1:]


def subgraph_schema(sdl: str) -> GraphQLSchema:
    # A subgraph's SDL uses federation directives it does not define (@key, @link...):
    # they say nothing about fields and types, so the SDL is built without validating them.
    return build_ast_schema(parse(sdl), assume_valid_sdl=True)


def schema_of(path: str, sdl: str) -> GraphQLSchema:
    return api_schema(sdl) if path == SUPERGRAPH else subgraph_schema(sdl)


# --- Breaking changes -------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    path: str  # schema/content.graphql
    kind: str  # FIELD_REMOVED, as graphql-core names it
    description: str  # "Field Document.title was removed.", the text acknowledgements quote
    commit: str  # where it happened: "1a2b3c4 Drop titles", or the working tree


@dataclass(frozen=True)
class Acknowledgement:
    file: str
    change: str
    reason: str

    def covers(self, change: Change) -> bool:
        return self.file == change.path and self.change == change.description


class AcknowledgementsInvalid(Exception):
    pass


def load_acknowledgements(text: str) -> list[Acknowledgement]:
    entries = yaml.safe_load(text) or []
    if not isinstance(entries, list):
        raise AcknowledgementsInvalid(f"{ACKNOWLEDGED} must be a list of entries")
    acknowledgements = []
    for number, entry in enumerate(entries, 1):
        values = entry if isinstance(entry, dict) else {}
        fields = {key: str(values.get(key) or "").strip() for key in ("file", "change", "reason")}
        missing = [key for key, value in fields.items() if not value]
        if missing or set(values) - set(fields):
            raise AcknowledgementsInvalid(
                f"{ACKNOWLEDGED}, entry {number}: needs exactly file, change and reason"
                f" (missing: {', '.join(missing) or 'none'})"
            )
        acknowledgements.append(Acknowledgement(**fields))
    return acknowledgements


def compare(path: str, old_sdl: str | None, new_sdl: str | None, commit: str) -> list[Change]:
    """The breaking changes to one schema file between two versions of it."""
    if old_sdl is None:
        return []  # a new file breaks nobody
    if new_sdl is None:
        return [Change(path, "FILE_REMOVED", f"{path} was removed.", commit)]
    old, new = schema_of(path, old_sdl), schema_of(path, new_sdl)
    return [
        Change(path, change.type.name, change.description, commit)
        for change in find_breaking_changes(old, new)
    ]


def dangerous(path: str, old_sdl: str, new_sdl: str) -> list[str]:
    """Changes that break no query but may surprise a client (an enum value added...)."""
    old, new = schema_of(path, old_sdl), schema_of(path, new_sdl)
    return [change.description for change in find_dangerous_changes(old, new)]


# --- Git -----------------------------------------------------------------------------


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def is_schema_file(path: str) -> bool:
    folder, _, name = path.rpartition("/")
    return folder == SCHEMA_DIR and name.endswith(".graphql")


@dataclass(frozen=True)
class FileChange:
    """One schema file changed by one commit: its blob before and after (None: absent)."""

    commit: str
    path: str
    old_blob: str | None
    new_blob: str | None


def schema_history(repo: Path = ROOT) -> Iterator[FileChange]:
    """Every change to a schema file in the history of HEAD, each against its first parent.

    A merge that had to combine both sides' schema files is compared with its first parent;
    one that took a side unchanged is skipped by git, and that side's commits are listed.
    """
    log = git(
        "log",
        "--diff-merges=first-parent",
        "--raw",
        "--no-renames",
        "--no-abbrev",
        "--format=%x1e%H%x1f%s",
        "--",
        SCHEMA_DIR,
        cwd=repo,
    )
    for entry in log.split("\x1e")[1:]:
        header, _, raw = entry.partition("\n")
        sha, _, subject = header.partition("\x1f")
        for line in raw.splitlines():
            if not line.startswith(":"):
                continue
            meta, path = line.split("\t", 1)
            _, _, old_blob, new_blob, status = meta.split()
            if not is_schema_file(path):
                continue
            yield FileChange(
                commit=f"{sha[:10]} {subject}",
                path=path,
                old_blob=None if status == "A" else old_blob,
                new_blob=None if status == "D" else new_blob,
            )


def working_tree_changes(base: str, repo: Path = ROOT) -> Iterator[tuple[str, str | None]]:
    """Schema files whose working-tree content differs from `base`: (path, base blob)."""
    changed = git("diff", "--name-only", "--no-renames", base, "--", SCHEMA_DIR, cwd=repo)
    for path in changed.splitlines():
        if is_schema_file(path):
            listed = git("ls-tree", base, "--", path, cwd=repo).split()
            yield path, listed[2] if listed else None


class Blobs:
    """File contents by blob id, read through one `git cat-file --batch` process."""

    def __init__(self, repo: Path) -> None:
        self.process = subprocess.Popen(
            ["git", "cat-file", "--batch"], cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.cache: dict[str, str] = {}

    def __enter__(self) -> Blobs:
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.close()
        self.process.stdout.close()
        self.process.wait()

    def read(self, blob: str | None) -> str | None:
        if blob is None:
            return None
        if blob not in self.cache:
            assert self.process.stdin and self.process.stdout
            self.process.stdin.write(f"{blob}\n".encode())
            self.process.stdin.flush()
            _, _, size = self.process.stdout.readline().split()
            content = self.process.stdout.read(int(size))
            self.process.stdout.read(1)  # the newline after each object
            self.cache[blob] = content.decode()
        return self.cache[blob]


@dataclass
class Report:
    compared: list[str] = field(default_factory=list)  # "1a2b3c4 subject: schema/x.graphql"
    breaking: list[Change] = field(default_factory=list)
    acknowledged: list[tuple[Change, Acknowledgement]] = field(default_factory=list)
    unused: list[Acknowledgement] = field(default_factory=list)
    dangerous: list[tuple[str, str]] = field(default_factory=list)  # (path, description)
    notes: list[str] = field(default_factory=list)

    @property
    def unacknowledged(self) -> list[Change]:
        covered = {change for change, _ in self.acknowledged}
        return [change for change in self.breaking if change not in covered]

    @property
    def ok(self) -> bool:
        return not self.unacknowledged and not self.unused


def check_breaking_changes(
    base: str | None = None,
    repo: Path = ROOT,
    acknowledgements: list[Acknowledgement] | None = None,
) -> Report:
    """Breaking changes in the history of schema/ (or since `base`), with their acknowledgements."""
    if acknowledgements is None:
        ack_file = repo / ACKNOWLEDGED
        acknowledgements = load_acknowledgements(ack_file.read_text() if ack_file.exists() else "")
    report = Report()
    with Blobs(repo) as blobs:
        if base is None:
            history = list(schema_history(repo))
            for file_change in reversed(history):
                path, commit = file_change.path, file_change.commit
                report.compared.append(f"{commit}: {path}")
                old, new = blobs.read(file_change.old_blob), blobs.read(file_change.new_blob)
                report.breaking += compare(path, old, new, commit)
            if git("rev-parse", "--is-shallow-repository", cwd=repo).strip() == "true":
                report.notes.append(
                    "shallow clone: commits before the clone's depth were not compared"
                )
        against = base or "HEAD"
        for path, base_blob in working_tree_changes(against, repo):
            old = blobs.read(base_blob)
            current = repo / path
            new = current.read_text() if current.exists() else None
            where = f"{WORKING_TREE} (against {against})"
            report.compared.append(f"{where}: {path}")
            report.breaking += compare(path, old, new, where)
            if old is not None and new is not None:
                report.dangerous += [(path, text) for text in dangerous(path, old, new)]

    for change in report.breaking:
        match = next((ack for ack in acknowledgements if ack.covers(change)), None)
        if match:
            report.acknowledged.append((change, match))
    if base is None and not report.notes:
        used = {ack for _, ack in report.acknowledged}
        report.unused = [ack for ack in acknowledgements if ack not in used]
    return report


def render(report: Report) -> str:
    lines = []
    for note in report.notes:
        lines.append(f"note: {note}")
    for path, text in report.dangerous:
        lines.append(f"dangerous (allowed): {path}: {text}")
    unacknowledged = report.unacknowledged
    if unacknowledged:
        lines.append(f"{len(unacknowledged)} breaking change(s) not acknowledged:")
        for change in unacknowledged:
            lines.append(f"  {change.path}, {change.commit}: {change.kind}: {change.description}")
        suggestions = {
            (change.path, change.description): {
                "file": change.path,
                "change": change.description,
                "reason": "<why clients can live with it>",
            }
            for change in unacknowledged
        }
        snippet = yaml.safe_dump(
            list(suggestions.values()), sort_keys=False, allow_unicode=True, width=1000
        )
        lines.append(f"\nIf that is intended, acknowledge each in {ACKNOWLEDGED}:\n{snippet}")
    for ack in report.unused:
        lines.append(
            f"{ACKNOWLEDGED}: no change in the history matches"
            f" {ack.file}: {ack.change!r} (a typo, or the change was never made?)"
        )
    if report.ok:
        lines.append(
            f"schema/: {len(report.compared)} file change(s) compared,"
            f" no unacknowledged breaking change ({len(report.acknowledged)} acknowledged)"
        )
    return "\n".join(lines)


# --- Client operations ----------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One file of schema/operations/: a single operation named like the file, and fragments."""

    path: Path
    document: DocumentNode

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def kind(self) -> str:  # query, mutation or subscription
        return next(
            definition.operation.value
            for definition in self.document.definitions
            if isinstance(definition, OperationDefinitionNode)
        )

    @property
    def text(self) -> str:
        return self.path.read_text()


def load_operations(folder: Path = ROOT / OPERATIONS_DIR) -> list[Operation]:
    """Every operation file, parsed (GraphQLSyntaxError names the file)."""
    return [
        Operation(path, parse(Source(path.read_text(), str(path.relative_to(ROOT)))))
        for path in sorted(folder.glob("*.graphql"))
    ]


def operation_errors(
    operations: Iterable[Operation], schema: GraphQLSchema
) -> dict[str, list[str]]:
    """What is wrong with each operation against the schema; empty when all is well."""
    failures = {}
    for operation in operations:
        problems = [str(error) for error in validate(schema, operation.document)]
        names = [
            definition.name.value if definition.name else None
            for definition in operation.document.definitions
            if isinstance(definition, OperationDefinitionNode)
        ]
        if names != [operation.name]:
            problems.append(f"must hold one operation, named {operation.name} like the file")
        if problems:
            failures[operation.name] = problems
    return failures
