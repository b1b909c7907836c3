// SPDX-License-Identifier: MIT
// doctest main for host tests.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
