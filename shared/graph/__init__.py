"""Microsoft Graph: app-only tokens, online meetings, users and mail."""
