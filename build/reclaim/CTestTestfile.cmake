# CMake generated Testfile for 
# Source directory: /work/main/reclaim
# Build directory: /work/main/build/reclaim
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
