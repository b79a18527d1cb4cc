file(REMOVE_RECURSE
  "CMakeFiles/hvmm_catch_main.dir/catch_main.cpp.o"
  "CMakeFiles/hvmm_catch_main.dir/catch_main.cpp.o.d"
  "libhvmm_catch_main.a"
  "libhvmm_catch_main.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/hvmm_catch_main.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
