"""HTTP edge shared by the functions: JSON responses and the one error → status mapping."""
