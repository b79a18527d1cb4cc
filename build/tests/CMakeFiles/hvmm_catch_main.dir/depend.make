# Empty dependencies file for hvmm_catch_main.
# This may be replaced when dependencies are built.
