"""E-mail and calendar invites for bookings (SPEC §8): templates, ICS, transports, delivery."""
