// What `hvmm --version` and GET /api/v1/vmm.ping report: the project version, and the git revision
// and build type at configure time (vmm/api/CMakeLists.txt sets them for version.cpp only).
#pragma once
#include <string_view>

namespace hvmm {
std::string_view version();
std::string_view build();
inline constexpr std::string_view kApiVersion = "v1";
}  // namespace hvmm
