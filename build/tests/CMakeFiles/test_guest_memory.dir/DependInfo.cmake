
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/unit/test_guest_memory.cpp" "tests/CMakeFiles/test_guest_memory.dir/unit/test_guest_memory.cpp.o" "gcc" "tests/CMakeFiles/test_guest_memory.dir/unit/test_guest_memory.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build/tests/CMakeFiles/hvmm_catch_main.dir/DependInfo.cmake"
  "/work/main/build/vmm/CMakeFiles/hvmm_memory.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
