"""Workflow's domain rules, one module per concept. GraphQL and REST both call these."""
