import sys

from subgraphs.content import SUBGRAPH

# Content's own commands; the others (serve, migrate, sdl, makemigration) are every subgraph's.
if sys.argv[1:2] == ["verify-audit"]:
    from subgraphs.content.commands import verify_audit

    sys.exit(verify_audit(SUBGRAPH))
if sys.argv[1:2] == ["reindex"]:
    from subgraphs.content.commands import reindex

    sys.exit(reindex(SUBGRAPH))
SUBGRAPH.main()
