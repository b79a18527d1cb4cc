// The translation unit that owns the tests' precompiled header (tests/CMakeLists.txt,
// hvmm_test_pch): it compiles the header once; every Catch2 test target reuses the result.
