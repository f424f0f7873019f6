"""The kit every kind of durable work uses: the retry policy, rounds and poison, marker
sweeps, recording on the latest version of a booking."""
