"""One typed client per service, all sharing the gateway's single HTTP client."""
