# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[test_guest_memory]=] "/work/main/build/tests/test_guest_memory")
set_tests_properties([=[test_guest_memory]=] PROPERTIES  LABELS "unit" TIMEOUT "300" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;6;add_test;/work/main/tests/CMakeLists.txt;14;hvmm_unit_test;/work/main/tests/CMakeLists.txt;0;")
subdirs("alloc")
subdirs("virtio")
subdirs("boot")
subdirs("api")
