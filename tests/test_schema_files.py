"""schema/ is generated from the code and committed: it must never drift from it, never break
clients unacknowledged, and every client operation in schema/operations/ must be valid."""

import re
import subprocess
import sys

from conftest import ROOT

from subgraphs.schema_checks import load_operations


def python_m_subgraphs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "subgraphs", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_exported_sdl_matches_the_committed_files() -> None:
    result = python_m_subgraphs("export-schema", "--check")
    assert result.returncode == 0, result.stderr


def test_committed_supergraph_is_what_composition_yields() -> None:
    result = subprocess.run(
        ["node", "router/compose.mjs", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_composition_failure_is_reported_with_the_composers_message(tmp_path) -> None:
    (tmp_path / "schema").mkdir()
    good = (ROOT / "schema" / "identity.graphql").read_text()
    # The same field with another type in a second subgraph cannot compose.
    clash = good.replace("email: String!", "email: Int!")
    (tmp_path / "schema" / "a.graphql").write_text(good)
    (tmp_path / "schema" / "b.graphql").write_text(clash)
    entries = "".join(
        f"  {name}:\n    routing_url: http://127.0.0.1:{port}/graphql\n"
        f"    schema:\n      file: ./schema/{name}.graphql\n"
        for name, port in (("a", 1), ("b", 2))
    )
    (tmp_path / "supergraph.yaml").write_text(f"federation_version: =2.9.0\nsubgraphs:\n{entries}")
    result = subprocess.run(
        ["node", str(ROOT / "router/compose.mjs"), "--config", str(tmp_path / "supergraph.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "User.email" in result.stdout + result.stderr
    assert not (tmp_path / "schema" / "supergraph.graphql").exists()


def test_no_unacknowledged_breaking_change_in_the_schema_history() -> None:
    """Every commit that changed schema/ against its parent, and the working tree against HEAD."""
    result = python_m_subgraphs("breaking-changes")
    assert result.returncode == 0, result.stdout + result.stderr


def test_client_operations_are_valid_against_the_supergraph() -> None:
    result = python_m_subgraphs("check-operations")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_readme_queries_are_client_operations() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```graphql\n(.*?)```", readme, flags=re.DOTALL)
    operations = {op.text for op in load_operations()}
    assert blocks
    for block in blocks:
        assert block in operations, f"README query is not a file in schema/operations/:\n{block}"
