"""The web UI's views, one module per area."""
