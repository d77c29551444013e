"""ChatFlow shared code: domain, ports, adapters and the HTTP layer used by every function."""
