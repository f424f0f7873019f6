"""Who is calling: bearer JWTs from trusted OIDC issuers (Firebase, Entra ID, the dev issuer)."""
