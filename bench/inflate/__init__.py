"""inflate: shrink a VM after touching and freeing memory, grow it back, allocate again (ARCHITECTURE.md, "Benchmarks")."""
