"""Database tables, engines and queries of the service."""
