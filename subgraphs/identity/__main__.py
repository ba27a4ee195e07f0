"""python -m subgraphs.identity [serve | migrate | sdl | makemigration MSG | grant-admin EMAIL]"""

import asyncio
import sys

from subgraphs.common.client import ClientInfo
from subgraphs.common.database import create_engine, create_sessionmaker
from subgraphs.common.errors import HubError
from subgraphs.identity import SUBGRAPH


async def grant_admin(email: str) -> None:
    engine = create_engine(SUBGRAPH.settings())
    try:
        from subgraphs.identity.service.access import bootstrap_admin

        async with create_sessionmaker(engine)() as session:
            user = await bootstrap_admin(session, email=email, client=ClientInfo())
        print(f"{user.email} is an administrator")
    finally:
        await engine.dispose()


if len(sys.argv) == 3 and sys.argv[1] == "grant-admin":
    try:
        asyncio.run(grant_admin(sys.argv[2]))
    except HubError as error:
        sys.exit(f"grant-admin: {error.message}")
else:
    SUBGRAPH.main()
