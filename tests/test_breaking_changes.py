"""The breaking-change check, on throwaway git repositories with a history of schema/."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from graphql import print_schema

from subgraphs.schema_checks import (
    ACKNOWLEDGED,
    AcknowledgementsInvalid,
    api_schema,
    check_breaking_changes,
    load_acknowledgements,
    render,
)

# A subgraph's SDL as the services export it, federation directives included.
CONTENT = """\
schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"]) {
  query: Query
}

type Document @key(fields: "id") {
  id: ID!
  title: String!
  owner: User!
}

type Query {
  _service: _Service!
  document(id: ID!): Document
  documents(first: Int! = 20, after: String = null): [Document!]!
}

type User @key(fields: "id") {
  id: ID!
}

type _Service {
  sdl: String!
}
"""
WITHOUT_TITLE = CONTENT.replace("  title: String!\n", "")


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
            cwd=self.path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def write(self, name: str, text: str) -> None:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def commit(self, message: str, **files: str) -> str:
        for name, text in files.items():
            self.write(f"schema/{name}.graphql", text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "--short=10", "HEAD").strip()

    def acknowledge(self, *entries: dict[str, str]) -> None:
        self.write(ACKNOWLEDGED, yaml.safe_dump(list(entries)))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path)
    repo.commit("Content subgraph", content=CONTENT)
    return repo


def test_a_removed_field_fails_and_the_report_says_what_and_where(repo: Repo) -> None:
    sha = repo.commit("Drop document titles", content=WITHOUT_TITLE)
    repo.commit("Something else")  # the break is not in the last commit

    report = check_breaking_changes(repo=repo.path)

    assert not report.ok
    [change] = report.unacknowledged
    assert change.path == "schema/content.graphql"
    assert change.kind == "FIELD_REMOVED"
    assert change.description == "Field Document.title was removed."
    assert change.commit == f"{sha} Drop document titles"
    text = render(report)
    assert f"schema/content.graphql, {sha} Drop document titles" in text
    assert "Field Document.title was removed." in text


def test_the_suggested_entry_acknowledges_the_change_once_it_has_a_reason(repo: Repo) -> None:
    repo.commit("Drop document titles", content=WITHOUT_TITLE)
    text = render(check_breaking_changes(repo=repo.path))
    suggested = yaml.safe_load(text[text.index("- file:") :])
    assert suggested == [
        {
            "file": "schema/content.graphql",
            "change": "Field Document.title was removed.",
            "reason": "<why clients can live with it>",
        }
    ]
    repo.acknowledge({**suggested[0], "reason": "No frontend ever showed it."})

    report = check_breaking_changes(repo=repo.path)

    assert report.ok, render(report)
    assert [ack.reason for _, ack in report.acknowledged] == ["No frontend ever showed it."]


def test_additions_are_not_breaking(repo: Repo) -> None:
    repo.commit(
        "Add a subtitle",
        content=CONTENT.replace("  title: String!\n", "  title: String!\n  subtitle: String\n"),
    )
    repo.commit("Add a subgraph", other="type Query { hello: String }\n")
    assert check_breaking_changes(repo=repo.path).ok


def test_uncommitted_changes_are_compared_with_head(repo: Repo) -> None:
    repo.write("schema/content.graphql", WITHOUT_TITLE)

    [change] = check_breaking_changes(repo=repo.path).unacknowledged

    assert change.commit == "working tree (against HEAD)"


def test_a_removed_schema_file_is_breaking(repo: Repo) -> None:
    (repo.path / "schema" / "content.graphql").unlink()
    repo.commit("Retire content")

    [change] = check_breaking_changes(repo=repo.path).unacknowledged

    assert change.description == "schema/content.graphql was removed."


def test_base_compares_only_that_commit_with_the_working_tree(repo: Repo) -> None:
    repo.commit("Drop document titles", content=WITHOUT_TITLE)
    base = repo.commit("Later")
    repo.write("schema/content.graphql", WITHOUT_TITLE.replace("  owner: User!\n", ""))

    report = check_breaking_changes(base=base, repo=repo.path)

    assert [change.description for change in report.unacknowledged] == [
        "Field Document.owner was removed."
    ]


def test_dangerous_changes_are_reported_but_allowed(repo: Repo) -> None:
    repo.write(
        "schema/content.graphql",
        CONTENT.replace("documents(first: Int! = 20,", "documents(first: Int! = 10,"),
    )

    report = check_breaking_changes(repo=repo.path)

    assert report.ok
    assert report.dangerous and "defaultValue" in report.dangerous[0][1]


def test_an_acknowledgement_that_matches_nothing_fails(repo: Repo) -> None:
    repo.commit("Drop document titles", content=WITHOUT_TITLE)
    repo.acknowledge(
        {
            "file": "schema/content.graphql",
            "change": "Field Document.titel was removed.",
            "reason": "typo",
        }
    )

    report = check_breaking_changes(repo=repo.path)

    assert not report.ok
    assert len(report.unacknowledged) == 1 and len(report.unused) == 1
    assert "no change in the history matches" in render(report)


def test_an_acknowledgement_needs_a_reason() -> None:
    with pytest.raises(AcknowledgementsInvalid, match="missing: reason"):
        load_acknowledgements("- file: schema/content.graphql\n  change: Something.\n")


def test_the_supergraph_is_compared_as_clients_see_it() -> None:
    supergraph = (ROOT / "schema" / "supergraph.graphql").read_text()
    with_hidden_parts = supergraph + (
        "type Hidden @inaccessible { x: String }\n"
        "extend type Query { internalNotes: String @inaccessible\n shown: String }\n"
    )

    sdl = print_schema(api_schema(with_hidden_parts))

    assert "join__" not in sdl and "link__" not in sdl and "@join" not in sdl
    assert "internalNotes" not in sdl and "Hidden" not in sdl
    assert "shown: String" in sdl
