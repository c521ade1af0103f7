"""The GraphQL gateway: one API over the four services for apps, partners and operators."""
