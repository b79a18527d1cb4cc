file(REMOVE_RECURSE
  "CMakeFiles/hvmm_memory.dir/guest_memory.cpp.o"
  "CMakeFiles/hvmm_memory.dir/guest_memory.cpp.o.d"
  "libhvmm_memory.a"
  "libhvmm_memory.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/hvmm_memory.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
