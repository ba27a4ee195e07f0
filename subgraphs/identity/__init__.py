"""Identity: users, credentials, roles, organizations, MFA, sessions and tokens."""

from subgraphs.common.subgraph import Subgraph
from subgraphs.identity.settings import IdentitySettings

SUBGRAPH = Subgraph(name="identity", settings_class=IdentitySettings, package=__name__)
