"""Postgres: tables, migrations, the embedded default, and all SQL."""
