# CMake generated Testfile for 
# Source directory: /work/main/vmm/api
# Build directory: /work/main/build/vmm/api
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
