"""How far the grades can be trusted: mutation analysis of the graded functions, seed margins, determinism."""
