"""Commands over all four subgraphs at once.

python -m subgraphs migrate            create and migrate every database
python -m subgraphs export-schema      write schema/<name>.graphql from the code
python -m subgraphs export-schema --check   fail if a committed SDL file is stale
python -m subgraphs breaking-changes   fail on an unacknowledged breaking change to schema/
python -m subgraphs check-operations   fail if an operation in schema/operations/ is invalid
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphql import GraphQLError

from subgraphs import schema_checks

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"


def migrate() -> int:
    # Imported here, not above: loading all four subgraphs takes seconds, which the schema
    # checks (breaking-changes, check-operations) do not need to spend.
    from subgraphs.catalog import SUBGRAPHS

    for subgraph in SUBGRAPHS:
        created = subgraph.migrate()
        settings = subgraph.settings()
        print(
            f"{subgraph.name}: database {settings.database_name}"
            f"{' created and' if created else ''} migrated"
        )
    return 0


def export_schema(check: bool) -> int:
    from subgraphs.catalog import SUBGRAPHS

    stale = []
    for subgraph in SUBGRAPHS:
        path = SCHEMA_DIR / f"{subgraph.name}.graphql"
        sdl = subgraph.sdl()
        current = path.read_text() if path.exists() else None
        if current == sdl:
            continue
        if check:
            stale.append(path)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(sdl)
            print(f"wrote {path.relative_to(SCHEMA_DIR.parent)}")
    for path in stale:
        print(
            f"{path.relative_to(SCHEMA_DIR.parent)} differs from what the code exports: "
            "run ./scripts/schema",
            file=sys.stderr,
        )
    return 1 if stale else 0


def breaking_changes(base: str | None) -> int:
    try:
        report = schema_checks.check_breaking_changes(base)
    except schema_checks.AcknowledgementsInvalid as error:
        print(error, file=sys.stderr)
        return 1
    print(schema_checks.render(report), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def check_operations() -> int:
    folder = schema_checks.ROOT / schema_checks.OPERATIONS_DIR
    try:
        operations = schema_checks.load_operations(folder)
    except GraphQLError as error:
        print(error, file=sys.stderr)
        return 1
    supergraph = (schema_checks.ROOT / schema_checks.SUPERGRAPH).read_text()
    failures = schema_checks.operation_errors(operations, schema_checks.api_schema(supergraph))
    for name, problems in failures.items():
        for problem in problems:
            print(f"{schema_checks.OPERATIONS_DIR}/{name}.graphql: {problem}", file=sys.stderr)
    if not failures:
        print(f"{schema_checks.OPERATIONS_DIR}: {len(operations)} operations valid")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m subgraphs")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create and migrate every subgraph's database")
    export = commands.add_parser("export-schema", help="write each subgraph's SDL to schema/")
    export.add_argument("--check", action="store_true", help="only check, exit 1 when stale")
    breaking = commands.add_parser(
        "breaking-changes",
        help="compare every commit's schema/ files with its parent's, and the working tree's",
    )
    breaking.add_argument(
        "--base", metavar="REV", help="compare the working tree with REV only (e.g. origin/main)"
    )
    commands.add_parser(
        "check-operations", help="validate schema/operations/ against the supergraph"
    )
    args = parser.parse_args()
    if args.command == "migrate":
        return migrate()
    if args.command == "breaking-changes":
        return breaking_changes(args.base)
    if args.command == "check-operations":
        return check_operations()
    return export_schema(args.check)


if __name__ == "__main__":
    sys.exit(main())
