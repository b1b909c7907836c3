// SPDX-License-Identifier: MIT
// Fuzzes parse_safetensors, the whole validation of a safetensors file, on arbitrary bytes. Any
// outcome but a valid header or an r1::Error is a finding (an uncaught exception aborts, the
// sanitizers catch memory and UB errors, -malloc_limit_mb catches large allocations). An accepted
// header is checked against the format's invariants, and the first and last byte of every tensor
// are read so that offsets escaping the buffer are caught by ASan even if validation missed them.
#include <cstdint>
#include <cstdlib>

#include "r1/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  r1::io::SafetensorsHeader h;
  try {
    h = r1::io::parse_safetensors(data, size, "fuzz");
  } catch (const r1::Error&) {
    return 0;
  }
  uint64_t pos = 0;
  volatile uint8_t sink = 0;
  for (const auto& e : h.entries) {
    if (e.begin != pos || e.end < e.begin) std::abort();
    if (e.shape.rank > r1::io::limits::max_rank) std::abort();
    if (uint64_t(e.shape.numel()) * r1::dtype_size(e.dtype) != e.nbytes()) std::abort();
    if (e.nbytes() > 0) {
      sink = sink + data[h.data_begin + e.begin];
      sink = sink + data[h.data_begin + e.end - 1];
    }
    pos = e.end;
  }
  if (h.data_begin + pos != size) std::abort();
  return 0;
}
