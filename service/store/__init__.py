"""Data access: plain parameterised SQL, one module per table, every query scoped to its owner."""
