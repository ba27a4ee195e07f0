"""python -m subgraphs.workflow [serve | migrate | sdl | makemigration MSG | scheduler]"""

import sys

from subgraphs.workflow import SUBGRAPH

if sys.argv[1:] == ["scheduler"]:
    from subgraphs.workflow.scheduler import main

    main()
else:
    SUBGRAPH.main()
