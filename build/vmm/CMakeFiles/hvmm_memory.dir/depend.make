# Empty dependencies file for hvmm_memory.
# This may be replaced when dependencies are built.
