# CMake generated Testfile for 
# Source directory: /work/main/tests/alloc
# Build directory: /work/main/build/tests/alloc
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
