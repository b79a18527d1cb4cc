file(REMOVE_RECURSE
  "libhvmm_memory.a"
)
