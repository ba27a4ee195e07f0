"""Communication's domain rules. GraphQL resolvers, REST routes, tasks and the event
consumer all call these: notifications (making and reading them), delivery (what a worker
does), preferences and contacts, conversations."""
