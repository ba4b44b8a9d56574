"""Services: the rules of the domain. They take the actor explicitly, flush, never commit."""
