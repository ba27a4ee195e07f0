from subgraphs.workflow import SUBGRAPH

SUBGRAPH.main()
