"""Activities, relationships, measures and segments: what business users do with profiles."""
