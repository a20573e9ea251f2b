"""Per-tenant plugin configuration under HQ governance, with secrets encrypted at rest."""
