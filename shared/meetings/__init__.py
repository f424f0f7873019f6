"""Meeting work (SPEC §7): the converger and its Graph steps, the queue worker, the
reconciliation timer with its pre-start verification."""
