"""Project discovery, profiles.yaml and targets, template rendering, and connection lookup."""
