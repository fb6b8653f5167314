"""Sync between the tills and the chain's central server (docs/sync.md).

`sync.store` and `sync.app` are the server (SQLAlchemy Core over SQLite or
PostgreSQL, FastAPI); `sync.client` and `sync.endofday` run on the till.
Nothing here imports the cashier UI.
"""
