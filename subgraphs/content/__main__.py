import sys

from subgraphs.content import SUBGRAPH

if sys.argv[1:2] == ["verify-audit"]:
    from subgraphs.content.commands import verify_audit

    sys.exit(verify_audit(SUBGRAPH))
SUBGRAPH.main()
