from subgraphs.identity import SUBGRAPH

SUBGRAPH.main()
