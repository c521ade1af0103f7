"""Live updates: the services' events the gateway subscribes to, fanned out to GraphQL
subscriptions on every gateway process (and, from the one process that received each,
to the teams' staff channels)."""
