"""schema/ is generated from the code and committed; it must never drift from it."""

import subprocess
import sys

from conftest import ROOT


def test_exported_sdl_matches_the_committed_files() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "subgraphs", "export-schema", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
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
