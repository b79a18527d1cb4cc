// What a device may ask of the VM it lives in.
#pragma once
#include <string>
#include <string_view>

#include "abi/exit_status.hpp"

namespace hvmm {

struct VmControl {
  virtual ~VmControl() = default;
  // Stop the VM with this exit status; `message` (may be empty) is printed once on stderr.
  // The first request wins; later ones are ignored.
  virtual void request_exit(int status, std::string message) = 0;
  virtual bool stopping() const = 0;
};

struct ConsoleSink {
  virtual ~ConsoleSink() = default;
  virtual void write(std::string_view bytes) = 0;
};

}  // namespace hvmm
