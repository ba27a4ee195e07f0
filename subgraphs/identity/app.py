from subgraphs.common.app import create_app
from subgraphs.identity import rest
from subgraphs.identity.graphql import schema
from subgraphs.identity.settings import IdentitySettings

app = create_app(
    settings=IdentitySettings(),
    schema=schema,
    rest=rest.router,
    title="Hub identity",
    description="Users, credentials, roles, organizations, MFA, sessions and tokens.",
)
