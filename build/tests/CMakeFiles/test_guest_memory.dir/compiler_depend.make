# Empty compiler generated dependencies file for test_guest_memory.
# This may be replaced when dependencies are built.
