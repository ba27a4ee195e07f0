"""python -m subgraphs.communication [serve | migrate | sdl | makemigration MSG | consume-events]"""

import sys

from subgraphs.communication import SUBGRAPH

if sys.argv[1:] == ["consume-events"]:
    from subgraphs.communication.consumer import main

    main()
else:
    SUBGRAPH.main()
