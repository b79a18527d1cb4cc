#include "vmm/api/version.hpp"

namespace hvmm {
std::string_view version() { return HVMM_VERSION; }
std::string_view build() { return HVMM_BUILD; }
}  // namespace hvmm
