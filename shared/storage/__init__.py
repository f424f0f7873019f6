"""Table Storage persistence behind small Protocols."""
