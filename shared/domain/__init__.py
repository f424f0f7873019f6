"""The domain: bookings, tenants and their meeting state. Imports no infrastructure."""
