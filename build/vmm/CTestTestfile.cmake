# CMake generated Testfile for 
# Source directory: /work/main/vmm
# Build directory: /work/main/build/vmm
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
subdirs("boot")
subdirs("api")
