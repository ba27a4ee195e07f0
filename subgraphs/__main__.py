"""Commands over all four subgraphs at once.

python -m subgraphs migrate            create and migrate every database
python -m subgraphs export-schema      write schema/<name>.graphql from the code
python -m subgraphs export-schema --check   fail if a committed SDL file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from subgraphs.catalog import SUBGRAPHS

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"


def migrate() -> int:
    for subgraph in SUBGRAPHS:
        created = subgraph.migrate()
        settings = subgraph.settings()
        print(
            f"{subgraph.name}: database {settings.database_name}"
            f"{' created and' if created else ''} migrated"
        )
    return 0


def export_schema(check: bool) -> int:
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m subgraphs")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create and migrate every subgraph's database")
    export = commands.add_parser("export-schema", help="write each subgraph's SDL to schema/")
    export.add_argument("--check", action="store_true", help="only check, exit 1 when stale")
    args = parser.parse_args()
    if args.command == "migrate":
        return migrate()
    return export_schema(args.check)


if __name__ == "__main__":
    sys.exit(main())
