from subgraphs.communication import SUBGRAPH

SUBGRAPH.main()
