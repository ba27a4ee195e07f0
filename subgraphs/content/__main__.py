from subgraphs.content import SUBGRAPH

SUBGRAPH.main()
