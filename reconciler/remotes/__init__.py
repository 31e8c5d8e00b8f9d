"""Remote APIs behind one small interface (``Remote``): list changed, fetch by ids, write."""
