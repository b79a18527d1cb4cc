# CMake generated Testfile for 
# Source directory: /work/main/vmm/boot
# Build directory: /work/main/build/vmm/boot
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
