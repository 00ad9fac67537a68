"""Plugin interfaces (data connectors, storage, frameworks) and their entry-point registry."""
