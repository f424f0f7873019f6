"""Use cases: one function per thing a caller can do, receiving what it needs as arguments."""
