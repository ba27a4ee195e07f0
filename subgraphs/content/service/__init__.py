"""Content's domain rules, one module per concern. GraphQL and REST both call these.

access      who may read, write or manage a document: one SQL predicate for every path
documents   create, update, delete, restore, purge; lists and batched loads
files       file versions: streamed upload with hash and limits, download, text extraction
sharing     shares to users and roles
search      full-text search with snippets, trigram fallback, Redis cache
audit       the hash-chained audit trail and its verification
events      change announcements on Redis (subscriptions, cache invalidation)
"""
