# CMake generated Testfile for 
# Source directory: /work/main/guest-alloc
# Build directory: /work/main/build/guest-alloc
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
