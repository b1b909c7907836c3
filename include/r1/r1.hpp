// SPDX-License-Identifier: MIT
// Umbrella header: everything in r1 that compiles with a plain C++20 host compiler. CUDA kernel
// definitions (*.cuh) are not included; the host-side declarations of CUDA paths are, and they
// are usable when R1_WITH_CUDA is 1 and the program links r1's kernel library.
#pragma once

#include "r1/core/config.hpp"
#include "r1/core/cuda.hpp"
#include "r1/core/dispatch.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/io/checkpoint.hpp"
#include "r1/io/json.hpp"
#include "r1/io/limits.hpp"
#include "r1/io/mmap.hpp"
#include "r1/io/safetensors.hpp"
#include "r1/models/config.hpp"
#include "r1/tensor/memory.hpp"
#include "r1/tensor/shape.hpp"
#include "r1/tensor/tensor.hpp"
#include "r1/tensor/view.hpp"
