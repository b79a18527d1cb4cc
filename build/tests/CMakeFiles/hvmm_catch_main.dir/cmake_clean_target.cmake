file(REMOVE_RECURSE
  "libhvmm_catch_main.a"
)
