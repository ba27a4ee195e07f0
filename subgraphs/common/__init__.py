"""What every subgraph shares: settings, database, Redis, errors, health, GraphQL plumbing.

Nothing here knows about a particular subgraph; subgraphs never import each other.
"""
