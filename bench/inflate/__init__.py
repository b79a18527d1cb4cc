"""inflate: shrink a VM after touching and freeing memory, grow it back, allocate again (DESIGN.md §7)."""
