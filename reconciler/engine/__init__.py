"""One reconciliation run: lock, window, the pull and push stages per mapping, the report."""
