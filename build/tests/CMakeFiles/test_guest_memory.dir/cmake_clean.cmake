file(REMOVE_RECURSE
  "CMakeFiles/test_guest_memory.dir/unit/test_guest_memory.cpp.o"
  "CMakeFiles/test_guest_memory.dir/unit/test_guest_memory.cpp.o.d"
  "test_guest_memory"
  "test_guest_memory.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/test_guest_memory.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
